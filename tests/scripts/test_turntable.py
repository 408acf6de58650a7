"""scripts/turntable.py: the test-stage command, gif conversion and the labelled side-by-side video.

(tests/threestudio/test_launch_scripts.py runs it through threestudio's launch.py.)"""

import shlex
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest


def fake_run(root, name, color, frames=5, size=16):
    run = root / name
    (run / "ckpts").mkdir(parents=True)
    (run / "ckpts" / "last.ckpt").write_bytes(b"")
    (run / "configs").mkdir()
    (run / "configs" / "parsed.yaml").write_text("name: x\ndata:\n  n_test_views: 120\n  eval_width: 64\n")
    (run / "save").mkdir()
    video = np.zeros((frames, size, size, 3), dtype=np.uint8) + np.array(color, dtype=np.uint8)
    imageio.mimwrite(run / "save" / "it10-test.mp4", list(video), fps=30, macro_block_size=1)
    imageio.mimwrite(run / "save" / "it2-test.mp4", list(video[:2]), fps=30, macro_block_size=1)
    return run


def trial_dir(command: list[str]) -> Path:
    """The folder launch.py writes into for these overrides: <exp_root_dir>/<name>/<tag><timestamp>."""
    values = dict(arg.split("=", 1) for arg in command if "=" in arg and not arg.startswith("-"))
    return Path(values["exp_root_dir"]) / values["name"] / (values["tag"] + shlex.split(values["timestamp"] or "''")[0])


def dry_run_command(turntable, argv, capsys) -> list[str]:
    turntable.main([*argv, "--dry-run"])
    return shlex.split(capsys.readouterr().out.strip())


def test_dry_run_prints_the_test_stage_command(turntable, tmp_path, capsys):
    run = fake_run(tmp_path, "run", (255, 0, 0))
    command = dry_run_command(turntable, [str(run), "--resolution", "128", "--frames", "60"], capsys)
    assert command[1:3] == ["launch.py", "--config"] and "--test" in command
    assert f"resume={(run / 'ckpts' / 'last.ckpt').resolve()}" in command
    assert {"data.eval_width=128", "data.eval_height=128", "data.n_test_views=60"} <= set(command)
    assert "use_timestamp=false" in command


def test_a_render_goes_to_a_new_folder_never_the_runs_own(turntable, tmp_path, capsys):
    """Re-rendering into the run's save/it<N>-test/ mixed the new frames with the old ones (12 frames for 6)."""
    run = fake_run(tmp_path, "run", (255, 0, 0))
    first = trial_dir(dry_run_command(turntable, [str(run), "--frames", "6", "--resolution", "48"], capsys))
    assert first == (run / "turntables" / "6views-48px").resolve()
    first.mkdir(parents=True)
    second = trial_dir(dry_run_command(turntable, [str(run), "--frames", "6", "--resolution", "48"], capsys))
    assert second == first.with_name("6views-48px-2")
    default = trial_dir(dry_run_command(turntable, [str(run)], capsys))
    assert default == (run / "turntables" / "120views-64px").resolve()  # the run's own views and eval size


def test_the_launch_path_comes_from_the_threestudio_root(turntable, tmp_path, capsys):
    run = fake_run(tmp_path, "run", (255, 0, 0))
    command = dry_run_command(turntable, [str(run), "--threestudio-root", str(tmp_path / "ts")], capsys)
    assert command[1] == str((tmp_path / "ts" / "launch.py").resolve())


def test_side_by_side_of_two_runs(turntable, tmp_path):
    baseline, carv = fake_run(tmp_path, "baseline", (255, 0, 0)), fake_run(tmp_path, "carv", (0, 0, 255))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    turntable.main([str(baseline), "--compare", str(carv), "--skip-render", "--out", str(tmp_path / "cmp")])
    frames = imageio.mimread(tmp_path / "cmp" / "side-by-side.mp4")
    assert len(frames) == 5 and frames[0].shape[:2] == (16 + 24, 32)
    assert frames[0][30, 8, 0] > 200 and frames[0][30, 24, 2] > 200  # baseline left, CARV right
    assert (tmp_path / "cmp" / "side-by-side.gif").stat().st_size > 0
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "cmp" not in p.parts)
    assert after == before  # nothing written into the runs
    turntable.main([str(baseline), "--compare", str(carv), "--skip-render", "--out", str(tmp_path / "cmp")])
    assert (tmp_path / "cmp" / "side-by-side-2.mp4").is_file()  # the first one is kept


def test_skip_render_without_compare_is_refused(turntable, tmp_path):
    with pytest.raises(SystemExit, match="only makes sense with --compare"):
        turntable.main([str(fake_run(tmp_path, "run", (255, 0, 0))), "--skip-render"])


def test_a_folder_without_checkpoint_is_refused(turntable, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "parsed.yaml").write_text("name: x\n")
    with pytest.raises(SystemExit, match="no checkpoint"):
        turntable.main([str(tmp_path), "--dry-run"])
