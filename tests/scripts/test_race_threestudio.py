"""scripts/race_threestudio.py without threestudio: its commands, and the race read from a synthetic trial folder."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from carv.cameras import make_cameras
from carv.pipeline.ground_truth import threestudio_test_batch
from carv.toyworld.ground_truth import PSNR_CAP, true_views

from .conftest import load_script

PROMPT = "a red mug"


@pytest.fixture(scope="module")
def race_threestudio():
    return load_script("race_threestudio")


def arguments(script, tmp_path, *extra):
    (tmp_path / "launch.py").write_text("")
    args, rest = script.parse_arguments(["--threestudio-root", str(tmp_path), "--out", str(tmp_path / "out"), *extra])
    return args, rest


def test_max_time_is_lightnings_days_hours_minutes_seconds(race_threestudio):
    assert race_threestudio.max_time(125.4) == "00:00:02:05"
    assert race_threestudio.max_time(90061) == "01:01:01:01" and race_threestudio.max_time(0.2) == "00:00:00:01"


def test_the_two_sides_differ_only_in_the_equal_cost_baseline_overrides(race_threestudio, tmp_path):
    args, extra = arguments(race_threestudio, tmp_path, "--seconds", "30", "data.width=16")
    carv = race_threestudio.train_command(args, "carv", PROMPT, 3, extra)
    baseline = race_threestudio.train_command(args, "baseline", PROMPT, 3, extra)
    added = [a for a in baseline if a not in carv]
    assert set(added) >= {"data.batch_size=4", "system.guidance.noise_samples_per_render=1", "name=baseline"}
    assert "system.guidance.timestep_proposal=uniform" in added and "system.guidance.timestep_stratified=false" in added
    for command in (carv, baseline):
        assert "trainer.max_time=00:00:00:30" in command and "seed=3" in command and "data.width=16" in command
        assert command.index("data.width=16") < command.index("seed=3")  # the race's own keys come last
        assert command[3] == str(race_threestudio.CONFIG) and command[4] == "--train"


def test_bad_arguments_are_one_line_errors(race_threestudio, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        race_threestudio.parse_arguments(["--threestudio-root", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "launch.py" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments(race_threestudio, tmp_path, "--fraction", "0")
    with pytest.raises(SystemExit):
        arguments(race_threestudio, tmp_path, "--views", "2")


def write_trial(trial, step_seconds: list[float], stages: dict[int, float], views: int) -> None:
    """A threestudio trial folder: parsed.yaml, csv_logs with the CARV phase times, and test stages whose frames
    show the true mug turned by `stages[step]` degrees (0: exact)."""
    (trial / "configs").mkdir(parents=True)
    (trial / "configs" / "parsed.yaml").write_text("data:\n  eval_camera_distance: 2.25\n  eval_fovy_deg: 45.0\n")
    (trial / "csv_logs" / "version_0").mkdir(parents=True)
    with open(trial / "csv_logs" / "version_0" / "metrics.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["step", "train/time_render", "train/time_guidance", "train/time_backward"])
        for step, seconds in enumerate(step_seconds):
            writer.writerow([step, seconds / 4, seconds / 2, seconds / 4])
    cameras = threestudio_test_batch(views + 1, 15.0, 2.25, 45.0, 24).cameras  # elevation: threestudio's default
    for step, turn in stages.items():
        turned = make_cameras(cameras.elevation, cameras.azimuth + turn, cameras.distance, cameras.fovy)
        truth = true_views(PROMPT, turned, 24, 24)
        folder = trial / "save" / f"it{step}-test"
        folder.mkdir(parents=True)
        for i in range(views + 1):
            panels = torch.cat([truth.rgb[i], truth.coverage[i, ..., None].expand(-1, -1, 3)], dim=1)
            Image.fromarray((panels.numpy() * 255).round().astype(np.uint8)).save(folder / f"{i}.png")


def test_quality_curve_of_a_trial_folder(race_threestudio, tmp_path):
    trial = tmp_path / "trial"
    write_trial(trial, [1.0, 2.0, 3.0, 4.0], {0: 90.0, 2: 30.0, 4: 0.0}, views=4)
    (trial / "save" / "it4-test.mp4").write_text("")  # the video beside a stage is not a stage
    curve = race_threestudio.quality_curve(trial, PROMPT, 4)
    assert [seconds for seconds, _ in curve] == [0.0, 3.0, 10.0]
    assert curve[-1][1] > 0.999 and curve[0][1] < curve[1][1] < curve[-1][1]
    camera = {"n_test_views": 5, "elevation": 15.0, "distance": 2.25, "fovy": 45.0, "views": 4}
    exact = race_threestudio.score_test_stage(trial / "save" / "it4-test", PROMPT, **camera)
    assert 40.0 < exact["masked_psnr"] < PSNR_CAP  # 8-bit PNG rounding only


def test_checkpoints_in_step_order(race_threestudio, tmp_path):
    (tmp_path / "ckpts").mkdir()
    for name in ("epoch=0-step=10.ckpt", "epoch=0-step=5.ckpt", "last.ckpt"):
        (tmp_path / "ckpts" / name).write_text("")
    assert [(s, p.name) for s, p in race_threestudio.checkpoints(tmp_path)] == [
        (5, "epoch=0-step=5.ckpt"),
        (10, "epoch=0-step=10.ckpt"),
    ]
