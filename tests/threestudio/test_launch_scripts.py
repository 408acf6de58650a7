"""scripts/turntable.py and scripts/sweep_rk.py running threestudio's launch.py for real (tests/scripts/ checks their
commands and tables without threestudio)."""

import csv
import hashlib
import math
import subprocess
import sys

import numpy as np

from .conftest import PROJECT_ROOT
from .launch_runs import SMALL, TOY, TOY_STEPS, TOY_VIEWS, launch_env, make_workdir, video_frames

SCRIPTS = PROJECT_ROOT / "scripts"


def run_script(name: str, args: list[str], threestudio_root, cwd) -> subprocess.CompletedProcess:
    """python scripts/<name>.py ARGS, whose launch.py subprocesses get the CPU stand-ins through the environment."""
    process = subprocess.run(
        [sys.executable, str(SCRIPTS / f"{name}.py"), *args],
        cwd=cwd,
        env=launch_env(threestudio_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert process.returncode == 0, f"{name}.py exited {process.returncode}:\n{process.stdout[-6000:]}"
    return process


def contents(folder) -> dict[str, str]:
    """Every file under folder (relative path) with the hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_turntable_at_another_resolution_leaves_the_run_as_it_was(toy_run, threestudio_root, tmp_path):
    """6 frames at 48 px from a run trained and tested at 32 px with 5 views: a video of exactly those frames, in a
    new folder; before, the frames went into the run's save/it<N>-test/ and the video mixed old and new ones."""
    workdir, run = toy_run
    before = contents(run)
    args = [str(run), "--threestudio-root", str(threestudio_root), "--workdir", str(workdir)]
    run_script("turntable", [*args, "--frames", "6", "--resolution", "48"], threestudio_root, tmp_path)
    assert contents(run).items() >= before.items()  # nothing the run had is altered
    assert {path for path in contents(run) if path not in before} <= {
        path for path in contents(run) if path.startswith("turntables/6views-48px/")
    }
    # a test frame is threestudio's grid: the render and its opacity side by side
    frames = video_frames(run / "turntables" / "6views-48px" / "save" / f"it{TOY_STEPS}-test.mp4")
    assert len(frames) == 6 and {np.asarray(frame).shape[:2] for frame in frames} == {(48, 96)}
    assert (run / "turntables" / "6views-48px" / "save" / f"it{TOY_STEPS}-test.gif").stat().st_size > 0
    own = video_frames(run / "save" / f"it{TOY_STEPS}-test.mp4")
    assert len(own) == TOY_VIEWS and {np.asarray(frame).shape[:2] for frame in own} == {(32, 64)}


def test_sweep_of_two_pairs_runs_launch_for_each(threestudio_root, tmp_path):
    """--a 2 --b 1 --budget 6 --k 1 4: (R, K) = (2, 1) and (1, 4), 3 steps each, tabled from their logs."""
    workdir = make_workdir(tmp_path / "work")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red mug\n")
    out = tmp_path / "sweep"
    args = ["--config", str(TOY), "--threestudio-root", str(threestudio_root), "--workdir", str(workdir)]
    args += ["--prompts", str(prompts), "--a", "2", "--b", "1", "--budget", "6", "--k", "1", "4", "--out", str(out)]
    overrides = SMALL + ["trainer.max_steps=3", "data.n_test_views=2", "system.guidance.timestep_stratified=false"]
    run_script("sweep_rk", [*args, *overrides], threestudio_root, tmp_path)
    with open(out / "sweep.csv", newline="") as stream:
        rows = {(int(row["R"]), int(row["K"])): row for row in csv.DictReader(stream)}
    assert set(rows) == {(2, 1), (1, 4)}
    for row in rows.values():
        assert int(row["steps"]) == 3 and math.isfinite(float(row["mean_step_seconds"]))
        assert math.isfinite(float(row["last_loss_sds"]))
    assert (out / "sweep.png").stat().st_size > 0
    assert (out / "carv-toy-teacher-R1K4" / "a_red_mug-seed0" / "save" / "it3-test.mp4").is_file()
