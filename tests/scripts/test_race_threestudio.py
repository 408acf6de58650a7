"""scripts/race_threestudio.py without threestudio: its commands, and the race read from a synthetic trial folder."""

import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from carv.cameras import make_cameras
from carv.paths import config_dir
from carv.pipeline.ground_truth import ValStageScorer, threestudio_val_batch
from carv.toyworld.ground_truth import PSNR_CAP, true_views

from .conftest import SCRIPTS, load_script

PROMPT = "a red mug"


@pytest.fixture(scope="module")
def race_threestudio():
    return load_script("race_threestudio")


@pytest.fixture(autouse=True)
def restored_clock_variable(monkeypatch):
    """parse_arguments sets $CARV_CLOCK for its subprocesses: put it back after each test."""
    monkeypatch.setenv("CARV_CLOCK", "wall")


def arguments(script, tmp_path, *extra):
    (tmp_path / "launch.py").write_text("")
    args, rest = script.parse_arguments(["--threestudio-root", str(tmp_path), "--out", str(tmp_path / "out"), *extra])
    return args, rest


def test_max_time_is_lightnings_days_hours_minutes_seconds(race_threestudio):
    assert race_threestudio.max_time(125.4) == "00:00:02:05"
    assert race_threestudio.max_time(90061) == "01:01:01:01" and race_threestudio.max_time(0.2) == "00:00:00:01"


def test_the_two_sides_differ_only_in_the_equal_cost_baseline_overrides(race_threestudio, tmp_path):
    args, extra = arguments(race_threestudio, tmp_path, "--seconds", "30", "--check-every", "7", "data.width=16")
    carv = race_threestudio.train_command(args, "carv", PROMPT, 3, extra)
    baseline = race_threestudio.train_command(args, "baseline", PROMPT, 3, extra)
    added = [a for a in baseline if a not in carv]
    assert set(added) >= {"data.batch_size=4", "system.guidance.noise_samples_per_render=1", "name=baseline"}
    assert "system.guidance.timestep_proposal=uniform" in added and "system.guidance.timestep_stratified=false" in added
    for command in (carv, baseline):
        assert {"system.max_train_seconds=30.0", "trainer.max_time=00:00:05:00", "seed=3", "data.width=16"} <= set(
            command
        )  # the budget in logged seconds; wall-clock only as a backstop at 10x
        assert {"trainer.val_check_interval=7", "data.n_val_views=8", "trainer.num_sanity_val_steps=-1"} <= set(command)
        assert command.index("data.width=16") < command.index("seed=3")  # the race's own keys come last
        assert command[3] == str(config_dir() / "carv-toy-teacher.yaml") and command[4] == "--train"


def test_relative_paths_are_resolved_before_launch_py_runs_from_the_workdir(race_threestudio, tmp_path, monkeypatch):
    """launch.py runs from --workdir: a relative --threestudio-root or --site-dir would name nothing there."""
    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "launch.py").write_text("")
    monkeypatch.chdir(tmp_path)
    args, extra = race_threestudio.parse_arguments(
        ["--threestudio-root", "ts", "--site-dir", "site", "--workdir", "/", "--out", "out"]
    )
    command = race_threestudio.train_command(args, "carv", PROMPT, 0, extra)
    assert command[1] == str(tmp_path / "ts" / "launch.py") and args.site_dir == [str(tmp_path / "site")]


def test_each_launch_py_gets_the_thread_count(race_threestudio, tmp_path, monkeypatch):
    """Without OMP_NUM_THREADS, --jobs 2 runs of torch's default threads oversubscribe a 2-core machine."""
    seen = []
    monkeypatch.setattr(race_threestudio.subprocess, "run", lambda command, **kwargs: seen.append(kwargs["env"]))
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    for extra, threads in (((), "1"), (("--threads", "3"), "3")):
        args, _ = arguments(race_threestudio, tmp_path, *extra)
        race_threestudio.launch(args, ["launch.py"], tmp_path / "log" / "run.log")
        assert seen[-1]["OMP_NUM_THREADS"] == threads


def test_bad_arguments_are_one_line_errors(race_threestudio, tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        race_threestudio.parse_arguments(["--threestudio-root", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "launch.py" in capsys.readouterr().err
    for bad in (["--fraction", "0"], ["--views", "2"], ["--views", "3"], ["--jobs", "0"], ["--threads", "0"]):
        with pytest.raises(SystemExit):
            arguments(race_threestudio, tmp_path, *bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(SystemExit):
        arguments(race_threestudio, tmp_path, "--clock", "process")
    assert "CUDA" in capsys.readouterr().err


def test_an_existing_out_is_refused_unless_resumed(race_threestudio, tmp_path, capsys, monkeypatch):
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit):
        arguments(race_threestudio, tmp_path)
    assert "--resume" in capsys.readouterr().err
    args, _ = arguments(race_threestudio, tmp_path, "--resume", "--clock", "process")
    assert os.environ["CARV_CLOCK"] == "process"  # for the launch.py subprocesses


def test_resume_keeps_finished_races_of_the_same_clock(race_threestudio, tmp_path):
    for seed, clock in ((0, "process"), (1, "process")):
        (tmp_path / f"a_red_mug-seed{seed}").mkdir()
        race = {"prompt": PROMPT, "seed": seed, "clock": clock}
        (tmp_path / f"a_red_mug-seed{seed}" / "race.json").write_text(json.dumps(race))
    assert set(race_threestudio.finished_races(tmp_path, "process")) == {(PROMPT, 0), (PROMPT, 1)}
    with pytest.raises(race_threestudio.ClockError, match="wall"):
        race_threestudio.finished_races(tmp_path, "wall")


def test_an_interrupted_run_folder_is_moved_aside(race_threestudio, tmp_path):
    trial = tmp_path / "carv" / "a_red_mug-seed0"
    for _ in range(2):
        (trial / "save").mkdir(parents=True)
        race_threestudio.move_aside(trial)
    assert not trial.exists() and sorted(p.name for p in trial.parent.iterdir()) == [
        "a_red_mug-seed0.interrupted1",
        "a_red_mug-seed0.interrupted2",
    ]


def write_trial(trial, step_seconds: list[float], checks: dict[int, float], views: int) -> None:
    """A threestudio trial folder: parsed.yaml, csv_logs with the CARV phase times (and a validation row without
    them), and validation images at the val cameras showing the true mug turned by `checks[step]` degrees (0: exact)."""
    (trial / "configs").mkdir(parents=True)
    parsed = "data:\n  eval_camera_distance: 2.25\n  eval_fovy_deg: 45.0\n  eval_height: 24\n"
    (trial / "configs" / "parsed.yaml").write_text(parsed)
    (trial / "csv_logs" / "version_0").mkdir(parents=True)
    with open(trial / "csv_logs" / "version_0" / "metrics.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["step", "train/time_render", "train/time_guidance", "train/time_backward", "lr"])
        for step, seconds in enumerate(step_seconds):
            writer.writerow([step, seconds / 4, seconds / 2, seconds / 4, ""])
            writer.writerow([step, "", "", "", 0.01])
    cameras = threestudio_val_batch(views, 15.0, 2.25, 45.0, 24).cameras  # elevation: threestudio's default
    (trial / "save").mkdir(parents=True)
    for step, turn in checks.items():
        turned = make_cameras(cameras.elevation, cameras.azimuth + turn, cameras.distance, cameras.fovy)
        truth = true_views(PROMPT, turned, 24, 24)
        for i in range(views):
            panels = torch.cat([truth.rgb[i], truth.coverage[i, ..., None].expand(-1, -1, 3)], dim=1)
            image = Image.fromarray((panels.numpy() * 255).round().astype(np.uint8))
            image.save(trial / "save" / f"it{step}-{i}.png")


def test_quality_curve_of_a_trial_folder(race_threestudio, tmp_path):
    trial = tmp_path / "trial"
    write_trial(trial, [1.0, 2.0, 3.0, 4.0], {0: 90.0, 2: 30.0, 4: 0.0}, views=4)
    (trial / "save" / "it4-train.png").write_text("")  # other images beside the checks are not checks
    assert race_threestudio.val_steps(trial) == [0, 2, 4]
    curve = race_threestudio.quality_curve(trial, PROMPT, 4)
    assert [seconds for seconds, _ in curve] == [0.0, 3.0, 10.0]  # logged seconds of the steps before each check
    assert curve[-1][1] > 0.999 and curve[0][1] < curve[1][1] < curve[-1][1]
    scorer = ValStageScorer(PROMPT, n_val_views=4, elevation=15.0, distance=2.25, fovy=45.0, size=24)
    assert 40.0 < scorer.score(trial / "save", 4)["masked_psnr"] < PSNR_CAP  # 8-bit PNG rounding only
    with pytest.raises(FileNotFoundError):
        ValStageScorer(PROMPT, n_val_views=5, elevation=15.0, distance=2.25, fovy=45.0, size=24).score(
            trial / "save", 4
        )


def test_curves_are_cut_where_a_side_stopped_short_of_the_budget(race_threestudio):
    """Both stopped by the budget (the next step would pass it): cut at the budget; one stopped by the wall-clock
    backstop or the step cap: cut at its logged seconds, which the other side also got."""
    by_budget = {"baseline": [0.0, 4.0, 8.0], "carv": [0.0, 3.0, 6.0, 9.0]}  # 8 + 4 > 10, 9 + 3 > 10
    assert race_threestudio.common_budget(by_budget, 10.0) == 10.0
    short = {"baseline": [0.0, 4.0, 8.0], "carv": [0.0, 1.0, 2.0, 3.0]}  # 3 + 1 <= 10: CARV stopped early
    assert race_threestudio.common_budget(short, 10.0) == 3.0
    assert race_threestudio.stopped_by_budget(by_budget["carv"], 10.0)
    assert not race_threestudio.stopped_by_budget(short["carv"], 10.0)


def test_jobs_run_comparisons_in_worker_processes_and_a_failed_one_is_recorded(tmp_path):
    """--jobs 2 with a launch.py that fails: each comparison reports its exit status and log; the batch exits 1."""
    import subprocess
    import sys

    root = tmp_path / "threestudio"
    root.mkdir()
    (root / "launch.py").write_text("import sys\nprint('launch.py ran')\nsys.exit(3)\n")
    script = SCRIPTS / "race_threestudio.py"
    command = [sys.executable, str(script), "--threestudio-root", str(root), "--seeds", "0", "1", "--jobs", "2"]
    process = subprocess.run(
        [*command, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, check=False
    )
    assert process.returncode == 1, process.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "race-threestudio.json").read_text())
    assert sorted((f["seed"], f["returncode"]) for f in summary["failed"]) == [(0, 3), (1, 3)]
    for seed in (0, 1):
        assert "launch.py ran" in (tmp_path / "out" / f"a_red_mug-seed{seed}" / "baseline.log").read_text()
