"""Quality bars of the shipped teacher and judge (issue 5), each on few samples.

Select them with ``pytest tests/toyworld/test_quality_bars.py``. Rates are
checked with a one-sided exact binomial test at 1%: a test fails when the
observed count is significantly below the bar. ``scripts/eval_toy_teacher.py``
measures the same figures on more samples.
"""

import json
import os

import pytest
import torch

from carv.cameras import VIEW_NAMES, make_cameras, view_class
from carv.toyworld.judge import Judge
from carv.toyworld.render import compose, render_geometry
from carv.toyworld.shapes import make_shape
from carv.toyworld.tokenizer import unknown_words
from carv.toyworld.world import COLOUR_NAMES, COLOURS, SHAPE_NAMES, caption, training_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEACHER = os.path.join(ROOT, "load", "toy-teacher")
JUDGE = os.path.join(ROOT, "load", "judge")

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(TEACHER, "model_index.json")), reason="no shipped teacher"
)


@pytest.fixture(scope="module")
def pipe():
    from carv.toyworld.teacher import load_teacher

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_teacher(TEACHER)


@pytest.fixture(scope="module")
def judge():
    return Judge.load(JUDGE)


def test_teacher_folder_is_stable_diffusion_format(pipe):
    cfg = pipe.scheduler.config
    assert (cfg.beta_schedule, cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps) == (
        "scaled_linear",
        0.00085,
        0.012,
        1000,
    )
    with torch.no_grad():
        latents = pipe.vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
    assert latents.shape == (1, 4, 16, 16)
    assert unknown_words("a red mug, front view", pipe.tokenizer) == []
    assert unknown_words("a red hamburger", pipe.tokenizer) == ["hamburger"]
    size = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(os.path.join(ROOT, "load")) for f in files
    )
    assert size <= 25 * 2**20


def test_judge_accuracy_on_fresh_renders(judge):
    gen = torch.Generator().manual_seed(1234)
    azimuth = torch.rand(24, generator=gen) * 360 - 180
    elevation = torch.rand(24, generator=gen) * 55 - 10
    cams = make_cameras(
        elevation, azimuth, 1.5 + 0.5 * torch.rand(24, generator=gen), 40 + 30 * torch.rand(24, generator=gen)
    )
    correct, view_correct, total = 0, 0, 0
    for s, name in enumerate(SHAPE_NAMES):
        colour = torch.randint(len(COLOUR_NAMES), (24,), generator=gen)
        palette = torch.tensor([COLOURS[c] for c in COLOUR_NAMES])
        images = compose(render_geometry(make_shape(name), cams), palette[colour])
        verdict = judge(images)
        correct += int(((verdict.shape.argmax(-1) == s) & (verdict.colour.argmax(-1) == colour)).sum())
        view_correct += int((verdict.view.argmax(-1) == view_class(elevation, azimuth)).sum())
        total += 24
    from carv.toyworld.evaluation import consistent_with_rate

    assert consistent_with_rate(correct, total, 0.95), f"{correct}/{total} shape and colour right"
    assert consistent_with_rate(view_correct, total, 0.95), f"{view_correct}/{total} view classes right"


def test_samples_show_their_prompts_shape_and_colour(pipe, judge):
    from carv.toyworld.evaluation import consistent_with_rate, sample_images, score_samples

    prompts = [caption(COLOUR_NAMES[c], SHAPE_NAMES[s]) for c, s in training_pairs()]
    images = sample_images(pipe, prompts, torch.Generator().manual_seed(0), steps=20)
    right = int(score_samples(judge, images, prompts).shape_and_colour.sum())
    assert consistent_with_rate(right, len(prompts), 0.8), f"{right}/{len(prompts)} samples judged as their prompt"


def test_view_suffixes_steer_the_view(pipe, judge):
    from carv.toyworld.evaluation import consistent_with_rate, sample_images, score_samples

    pairs = training_pairs()[::4]
    prompts = [caption(COLOUR_NAMES[c], SHAPE_NAMES[s], v) for c, s in pairs for v in VIEW_NAMES]
    images = sample_images(pipe, prompts, torch.Generator().manual_seed(1), steps=20)
    agree = int(score_samples(judge, images, prompts).view.sum())
    assert consistent_with_rate(agree, len(prompts), 0.6), f"{agree}/{len(prompts)} samples in the asked view"


@pytest.mark.parametrize("prompt", ["a yellow chair", "a red car"])
def test_plain_sds_on_one_image_yields_the_prompt(pipe, judge, prompt):
    from carv.toyworld.evaluation import image_sds

    image = image_sds(pipe, prompt, torch.Generator().manual_seed(0), steps=300)
    fidelity = float(judge.prompt_fidelity(image, prompt))
    assert fidelity > 0.5, f"SDS image of {prompt!r} has prompt fidelity {fidelity:.3f}"


def test_judge_classes_file_lists_the_world():
    with open(os.path.join(JUDGE, "classes.json")) as f:
        classes = json.load(f)
    assert classes["shapes"] == list(SHAPE_NAMES) and classes["views"] == list(VIEW_NAMES)
