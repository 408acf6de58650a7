"""The tiny teacher fixtures load through diffusers' real from_pretrained path, offline."""

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, IFPipeline, StableDiffusionPipeline

from carv.testing.teachers import FIXTURE_WORDS, build_tiny_if_teacher, build_tiny_sd_teacher


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_sd_fixture_loads_as_a_stable_diffusion_pipeline(tmp_path):
    folder = build_tiny_sd_teacher(tmp_path / "sd", seed=0)
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, local_files_only=True)
    assert isinstance(pipe.vae, AutoencoderKL) and isinstance(pipe.scheduler, DDIMScheduler)
    config = pipe.scheduler.config
    assert (config.beta_schedule, config.beta_start, config.beta_end) == ("scaled_linear", 0.00085, 0.012)
    assert config.num_train_timesteps == 1000
    tokens = pipe.tokenizer.tokenize("a photo of a hamburger")
    assert tokens == ["a</w>", "photo</w>", "of</w>", "a</w>", "hamburger</w>"]
    ids = pipe.tokenizer("a photo of a cat", padding="max_length", return_tensors="pt").input_ids
    embeddings = pipe.text_encoder(ids)[0]
    assert embeddings.shape == (1, 77, pipe.unet.config.cross_attention_dim)
    latents = pipe.vae.encode(torch.rand(1, 3, 16, 16) * 2 - 1).latent_dist.mean
    assert latents.shape == (1, 4, 8, 8)
    assert pipe.unet(latents, 500, encoder_hidden_states=embeddings).sample.shape == latents.shape


def test_if_fixture_is_a_pixel_teacher_with_variance_channels(tmp_path):
    folder = build_tiny_if_teacher(tmp_path / "if", seed=0, sample_size=8)
    pipe = IFPipeline.from_pretrained(
        folder, safety_checker=None, watermarker=None, feature_extractor=None, local_files_only=True
    )
    assert not hasattr(pipe, "vae") and isinstance(pipe.scheduler, DDPMScheduler)
    assert (pipe.unet.config.in_channels, pipe.unet.config.out_channels, pipe.unet.config.sample_size) == (3, 6, 8)
    out = pipe.unet(torch.randn(1, 3, 8, 8), 10, encoder_hidden_states=torch.randn(1, 77, 16)).sample
    assert out.shape == (1, 6, 8, 8)


def test_same_seed_same_weights_and_the_global_rng_is_untouched(tmp_path):
    state = torch.get_rng_state()
    folders = [build_tiny_sd_teacher(tmp_path / name, seed=seed) for name, seed in [("a", 1), ("b", 1), ("c", 2)]]
    assert torch.equal(torch.get_rng_state(), state)
    weights = [(folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() for folder in folders]
    assert weights[0] == weights[1] != weights[2]


def test_every_fixture_word_is_one_token(tmp_path):
    pipe = StableDiffusionPipeline.from_pretrained(build_tiny_sd_teacher(tmp_path / "sd"), safety_checker=None)
    assert all(pipe.tokenizer.tokenize(word) == [word + "</w>"] for word in FIXTURE_WORDS)
