"""scripts/turntable.py: the test-stage command, gif conversion and the labelled side-by-side video."""

import shlex

import imageio.v2 as imageio
import numpy as np
import pytest


def fake_run(root, name, color, frames=5, size=16):
    run = root / name
    (run / "ckpts").mkdir(parents=True)
    (run / "ckpts" / "last.ckpt").write_bytes(b"")
    (run / "configs").mkdir()
    (run / "configs" / "parsed.yaml").write_text("name: x\n")
    (run / "save").mkdir()
    video = np.zeros((frames, size, size, 3), dtype=np.uint8) + np.array(color, dtype=np.uint8)
    imageio.mimwrite(run / "save" / "it10-test.mp4", list(video), fps=30, macro_block_size=1)
    imageio.mimwrite(run / "save" / "it2-test.mp4", list(video[:2]), fps=30, macro_block_size=1)
    return run


def test_dry_run_prints_the_test_stage_command(turntable, tmp_path, capsys):
    run = fake_run(tmp_path, "run", (255, 0, 0))
    turntable.main([str(run), "--resolution", "128", "--frames", "60", "--dry-run"])
    command = shlex.split(capsys.readouterr().out.strip())
    assert command[1:3] == ["launch.py", "--config"] and "--test" in command
    assert f"resume={(run / 'ckpts' / 'last.ckpt').resolve()}" in command
    assert {"data.eval_width=128", "data.eval_height=128", "data.n_test_views=60"} <= set(command)


def test_side_by_side_of_two_runs(turntable, tmp_path):
    baseline, carv = fake_run(tmp_path, "baseline", (255, 0, 0)), fake_run(tmp_path, "carv", (0, 0, 255))
    turntable.main([str(baseline), "--compare", str(carv), "--skip-render", "--out", str(tmp_path / "cmp")])
    frames = imageio.mimread(tmp_path / "cmp" / "side-by-side.mp4")
    assert len(frames) == 5 and frames[0].shape[:2] == (16 + 24, 32)
    assert frames[0][30, 8, 0] > 200 and frames[0][30, 24, 2] > 200  # baseline left, CARV right
    assert (tmp_path / "cmp" / "side-by-side.gif").stat().st_size > 0
    assert (baseline / "save" / "it10-test.gif").is_file() and not (baseline / "save" / "it2-test.gif").exists()


def test_a_folder_without_checkpoint_is_refused(turntable, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "parsed.yaml").write_text("name: x\n")
    with pytest.raises(SystemExit, match="no checkpoint"):
        turntable.main([str(tmp_path), "--dry-run"])
