"""threestudio's own launch.py, unchanged, end to end: --train of every shipped config that can run on a CPU,
--test / --validate / a resumed --train from a run's last checkpoint, system.guidance.noise_samples_per_render=auto
(R and K chosen online), and the error a user without the `carv` package sees. Each run is shrunk to a few seconds of work (32 px, 8 samples per ray, few
steps); launch.py's own imports cost more. Runs land in pytest's temporary folders."""

import math
import re

import pytest
import torch

from .conftest import PROJECT_ROOT
from .launch_runs import (
    CONFIGS,
    CPU_STAND_INS,
    SMALL,
    TOY,
    TOY_STEPS,
    TOY_VIEWS,
    assert_complete_train_run,
    check_ok,
    csv_series,
    make_workdir,
    run_launch,
    tensorboard_series,
    toy_overrides,
    video_frames,
)


def test_toy_teacher_config_trains_through_launch(toy_run):
    _, run = toy_run
    assert_complete_train_run(run, TOY_STEPS, TOY_VIEWS)
    assert all(seconds > 0 for _, seconds in csv_series(run, "train/time_guidance"))
    max_steps = [value for _, value in csv_series(run, "train/max_step")]
    assert max_steps[0] == 980 and max_steps[-1] == 500  # update_step reaches the guidance through the phase timer


@pytest.mark.parametrize("config, teacher", [("carv-dreamfusion-sd", "sd"), ("carv-dreamfusion-if", "if")])
def test_shipped_nerf_config_trains_through_launch(threestudio_root, tmp_path, tiny_teachers, config, teacher):
    """The shipped configs' guidance, system and losses as configured, with the tiny random teachers of carv.testing
    and CPU stand-ins for their CUDA-only renderer and encodings."""
    folder = tiny_teachers[teacher]
    overrides = (
        CPU_STAND_INS
        + SMALL
        + [
            "system.prompt_processor.prompt=a photo of a hamburger",
            f"system.prompt_processor.pretrained_model_name_or_path={folder}",
            f"system.guidance.pretrained_model_name_or_path={folder}",
            "data.n_test_views=4",  # not 3: threestudio's test cameras then hit torch.cross's ambiguous default dim
            "trainer.max_steps=2",
            "tag=shipped",
        ]
    )
    workdir = make_workdir(tmp_path / "work")
    check_ok(run_launch(threestudio_root, workdir, CONFIGS / f"{config}.yaml", "train", overrides))
    run = workdir / "outputs" / config / "shipped"
    assert_complete_train_run(run, steps=2, test_views=4)
    assert all(math.isfinite(value) for _, value in csv_series(run, "train/loss_orient"))


def test_test_stage_from_the_last_checkpoint(toy_run, threestudio_root, tmp_path):
    workdir, run = toy_run
    overrides = [f"resume={run / 'ckpts' / 'last.ckpt'}", f"exp_root_dir={tmp_path}"]
    check_ok(run_launch(threestudio_root, workdir, run / "configs" / "parsed.yaml", "test", overrides))
    video = tmp_path / "carv-toy-teacher" / "toy" / "save" / f"it{TOY_STEPS}-test.mp4"
    assert len(video_frames(video)) == TOY_VIEWS  # at the checkpoint's step, with the run's views


def test_validation_from_the_last_checkpoint(toy_run, threestudio_root, tmp_path):
    workdir, run = toy_run
    overrides = [f"resume={run / 'ckpts' / 'last.ckpt'}", f"exp_root_dir={tmp_path}"]
    check_ok(run_launch(threestudio_root, workdir, run / "configs" / "parsed.yaml", "validate", overrides))
    assert (tmp_path / "carv-toy-teacher" / "toy" / "save" / f"it{TOY_STEPS}-0.png").stat().st_size > 0


def test_resumed_training_continues_at_its_step(toy_run, threestudio_root, tmp_path):
    workdir, run = toy_run
    overrides = toy_overrides("toy", steps=TOY_STEPS + 2) + [
        f"resume={run / 'ckpts' / 'last.ckpt'}",
        f"exp_root_dir={tmp_path}",
    ]
    check_ok(run_launch(threestudio_root, workdir, TOY, "train", overrides))
    resumed = tmp_path / "carv-toy-teacher" / "toy"
    assert [step for step, _ in csv_series(resumed, "train/loss_sds")] == [TOY_STEPS, TOY_STEPS + 1]
    checkpoint = torch.load(resumed / "ckpts" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == TOY_STEPS + 2
    assert len(video_frames(resumed / "save" / f"it{TOY_STEPS + 2}-test.mp4")) == TOY_VIEWS


PROBE_VALUES = (
    "renders",
    "k",
    "applies_from",
    "sigma_b2",
    "sigma_w2",
    "cost_a",
    "cost_b",
    "budget",
    "ecm_vs_baseline",
    "linear_renders",
    "linear_k",
    "linear_ecm_vs_baseline",
    "k_star",
)


def test_auto_sets_the_batch_size_it_chose_and_logs_its_probe_on_probe_steps_only(threestudio_root, tmp_path):
    """data.batch_size = 2 with auto_r_max = 1: the first choice (before step 0) must change R to 1, and it reaches the
    batches from step 2 on (Lightning had collated the batch of step 1 already), K with it."""
    overrides = toy_overrides("auto", steps=5) + [
        "data.batch_size=2",
        "system.guidance.noise_samples_per_render=auto",
        "system.guidance.auto_k_initial=2",
        "system.guidance.auto_every_n_steps=2",
        "system.guidance.auto_k_max=12",
        "system.guidance.auto_r_max=1",
        "system.guidance.auto_baseline_renders=2",
        "system.guidance.auto_max_draws_per_step=16",
        "system.guidance.auto_probe_size=3",
    ]
    workdir = make_workdir(tmp_path / "work")
    process = run_launch(threestudio_root, workdir, TOY, "train", overrides)
    check_ok(process)
    assert "auto planned R" not in process.stdout  # every batch had the planned R
    run = workdir / "outputs" / "carv-toy-teacher" / "auto"
    for read in (csv_series, tensorboard_series):
        ks = read(run, "train/auto_k")
        assert [step for step, _ in ks] == [0, 1, 2, 3, 4]
        assert all(1 <= k <= 12 and k == int(k) for _, k in ks)
        assert [r for _, r in read(run, "train/auto_renders")] == [2.0, 2.0, 1.0, 1.0, 1.0]
        for name in PROBE_VALUES:
            probe = read(run, f"train/carv_{name}")
            assert [step for step, _ in probe] == [0, 2, 4], (read.__name__, name)  # not repeated in between
            assert all(math.isfinite(value) for _, value in probe), (name, probe)
        chosen = dict(read(run, "train/carv_k"))
        assert [k for _, k in ks] == [2.0, 2.0, chosen[0], chosen[0], chosen[2]]  # each choice 2 steps on
    assert [r for _, r in csv_series(run, "train/carv_renders")] == [1.0, 1.0, 1.0]


def readme_failure_paragraph() -> str:
    """The README's description of what a user sees when the extension cannot load."""
    text = (PROJECT_ROOT / "README.md").read_text()
    match = re.search(r"If the extension cannot load.*?(?:\n\n|$)", text, flags=re.S)
    assert match, "README.md no longer describes a failed extension load"
    return match.group(0)


@pytest.mark.parametrize(
    "config, overrides",
    [(TOY, []), (CONFIGS / "carv-dreamfusion-sd.yaml", [])],
    ids=["carv_load-config", "hub-teacher-config"],
)
def test_without_carv_launch_fails_as_the_readme_says(threestudio_root, tmp_path, config, overrides):
    """Without `carv`: the extension's banner says what to install, and the error launch.py ends with is the one the
    README names, with the README's quoted messages in the output."""
    workdir = make_workdir(tmp_path / "work")
    overrides = ["system.prompt_processor.prompt=a red mug", "tag=missing", *overrides]
    process = run_launch(threestudio_root, workdir, config, "train", overrides, block_imports="carv")
    assert process.returncode != 0
    output = process.stdout
    assert "threestudio-carv cannot load: the `carv` package is not importable" in output
    assert "pip install -e" in output
    last_traceback = output.rsplit("Traceback (most recent call last):", 1)[-1]
    final_error = re.search(r"^(?:\w+\.)*(\w+):", last_traceback, flags=re.M).group(1)  # what launch.py ended with
    paragraph = readme_failure_paragraph()
    assert final_error in paragraph, (final_error, output[-2000:])
    for quoted in re.findall(r'"([^"]+)"', paragraph):
        assert quoted in output, quoted
