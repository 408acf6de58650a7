"""The teacher recipe end to end at toy sizes: a folder StableDiffusionPipeline loads offline; resume skips work."""

import os

import pytest
import torch

from carv.toyworld.evaluation import binomial_cdf, consistent_with_rate
from carv.toyworld.recipe import (
    RecipeSettings,
    build_everything,
    caption_table,
    export_checkpoint,
    training_views,
    vae_batch,
)
from carv.toyworld.teacher import corrupt
from carv.toyworld.world import COLOURS, WorldViews


def tiny_settings() -> RecipeSettings:
    return RecipeSettings(
        seed=0, views_per_shape=6, test_views_per_shape=4, judge_views_per_shape=2, judge_steps=3, judge_batch=8,
        vae_steps=3, vae_batch=4,
        colours_per_view=1, unet_steps=4, unet_batch=4, checkpoint_every=2,
    )  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    out, work = str(root / "load"), str(root / "work")
    times = build_everything(out, work, tiny_settings())
    return out, work, times


def test_folder_loads_as_stable_diffusion_pipeline(built, monkeypatch):
    from diffusers import StableDiffusionPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out, _, times = built
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(out, "toy-teacher"))
    pipe.set_progress_bar_config(disable=True)
    images = pipe("a red mug, front view", num_inference_steps=2, height=64, width=64, output_type="pt").images
    assert images.shape == (1, 3, 64, 64)
    assert pipe.unet.dtype == pipe.text_encoder.dtype == pipe.vae.dtype
    assert pipe.feature_extractor is None and pipe.safety_checker is None
    for name in ("vocab.json", "merges.txt"):
        assert os.path.exists(os.path.join(out, "toy-teacher", "tokenizer", name))
    assert os.path.exists(os.path.join(out, "judge", "classes.json"))
    assert set(times) == {"world", "world_test", "world_judge", "judge", "vae", "latents", "unet", "export"}


def test_resume_skips_finished_stages_and_export_from_checkpoint(built, tmp_path):
    out, work, _ = built
    before = os.path.getmtime(os.path.join(work, "world.pt"))
    build_everything(out, work, tiny_settings())
    assert os.path.getmtime(os.path.join(work, "world.pt")) == before
    assert torch.load(os.path.join(work, "unet_ckpt.pt"), weights_only=False)["step"] == 4
    assert export_checkpoint(work, str(tmp_path / "teacher")) == 4


def test_caption_table_holds_plain_and_view_captions(built):
    from transformers import CLIPTokenizer

    _, work, _ = built
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(work, "tokenizer"))
    ids, empty = caption_table(tokenizer)
    from carv.toyworld.teacher import tokenize

    assert torch.equal(ids[0, 0, 0], tokenize(tokenizer, ["a red mug"])[0])
    assert torch.equal(ids[0, 0, 2], tokenize(tokenizer, ["a red mug, front view"])[0])
    assert torch.equal(ids[2, 7, 4], tokenize(tokenizer, ["a blue robot, overhead view"])[0])
    assert torch.equal(empty, tokenize(tokenizer, [""])[0])


def test_binomial_test_helpers():
    assert binomial_cdf(10, 10, 0.3) == pytest.approx(1.0)
    assert binomial_cdf(0, 3, 0.5) == pytest.approx(0.125)
    assert consistent_with_rate(35, 44, 0.8) and not consistent_with_rate(20, 44, 0.8)
    with pytest.raises(ValueError):
        consistent_with_rate(5, 4, 0.5)


def _off_palette(images: torch.Tensor) -> torch.Tensor:
    """[B] bool: the image's object colour is none of the six (its brightest object pixel, normalised to remove
    the shading, is farther than 0.02 from every palette colour; coverage is 0 or 1, so no pixel mixes in white)."""
    flat = images.flatten(2)
    brightest = (flat * (flat.min(1, keepdim=True).values < 0.98)).sum(1).argmax(-1)
    colour = flat[torch.arange(flat.shape[0]), :, brightest]
    palette = torch.tensor(list(COLOURS.values()))
    distance = torch.cdist(colour / colour.sum(-1, keepdim=True), palette / palette.sum(-1, keepdim=True))
    return distance.min(-1).values > 0.02


def test_vae_batch_paints_any_colour_in_its_share(built):
    _, work, _ = built
    world = WorldViews.from_state_dict(torch.load(os.path.join(work, "world.pt"), weights_only=False))
    allowed = training_views(world)

    def off_palette_rate(share: float, seed: int, n: int = 256) -> float:
        settings = RecipeSettings(vae_batch=n, vae_random_colour_share=share)
        return _off_palette(vae_batch(world, allowed, settings, torch.Generator().manual_seed(seed))).float().mean()

    assert off_palette_rate(0.0, 0) == 0.0  # exact: every image in one of the six colours
    anything, half = off_palette_rate(1.0, 1), off_palette_rate(0.5, 2)
    assert anything > 0.5  # random RGB is almost never one of the six directions
    # half the batch in random colours: E[half] = anything / 2; two independent binomial proportions of 256
    se = ((half * (1 - half) + 0.25 * anything * (1 - anything)) / 256) ** 0.5
    assert abs(half - anything / 2) < 4.0 * max(se, 1 / 256)


def test_corrupt_leaves_a_share_untouched_and_keeps_range():
    images = torch.rand(200, 3, 8, 8)
    assert torch.equal(corrupt(images, 0.0, 0.1, torch.Generator().manual_seed(0)), images)
    out = corrupt(images, 0.5, 0.1, torch.Generator().manual_seed(0))
    changed = (out != images).flatten(1).any(-1).float().mean()
    se = (0.5 * 0.5 / 200) ** 0.5  # binomial(200, 0.5) proportion: every corrupted image has a changed pixel
    assert abs(changed - 0.5) < 4.0 * se
    assert out.min() >= 0.0 and out.max() <= 1.0
