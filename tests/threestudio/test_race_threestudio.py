"""The ground-truth race on threestudio's path: its test cameras are threestudio's, and scripts/race_threestudio.py
runs launch.py end to end (shrunk to a few steps) where the test-only CPU stand-ins of launch_site/ are present."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from carv.pipeline.ground_truth import threestudio_test_batch

from .conftest import EXTENSION_DIR, HERE, PROJECT_ROOT, THREESTUDIO_ROOT

LAUNCH_SITE = Path(os.environ.get("CARV_LAUNCH_SITE") or HERE / "launch_site")


def test_ground_truth_cameras_are_threestudios_test_cameras(threestudio):
    from threestudio.data.uncond import RandomCameraDataModuleConfig, RandomCameraDataset
    from threestudio.utils.config import parse_structured

    options = {"eval_height": 24, "eval_width": 24, "eval_camera_distance": 2.25, "eval_fovy_deg": 45.0}
    dataset = RandomCameraDataset(
        parse_structured(RandomCameraDataModuleConfig, {**options, "n_test_views": 9}), "test"
    )
    ours = threestudio_test_batch(9, 15.0, 2.25, 45.0, 24)
    torch.testing.assert_close(ours.cameras.c2w, dataset.c2w)
    torch.testing.assert_close(ours.rays_o, dataset.rays_o)
    torch.testing.assert_close(ours.rays_d, dataset.rays_d)
    torch.testing.assert_close(torch.deg2rad(ours.cameras.fovy), dataset.fovy)


@pytest.mark.skipif(not (LAUNCH_SITE / "sitecustomize.py").is_file(), reason="no test-only launch_site/ stand-ins")
def test_race_through_launch(tmp_path, monkeypatch):
    """Both sides train 2 steps through launch.py, the untrained scene is tested, and race.json is written."""
    spec = importlib.util.spec_from_file_location("race_threestudio", PROJECT_ROOT / "scripts" / "race_threestudio.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    workdir = tmp_path / "work"
    (workdir / "custom").mkdir(parents=True)
    (workdir / "custom" / "threestudio-carv").symlink_to(EXTENSION_DIR, target_is_directory=True)
    root = THREESTUDIO_ROOT or str(Path(sys.modules["threestudio"].__file__).parents[1])
    small = ["data.width=32", "data.height=32", "data.eval_width=32", "data.eval_height=32"]
    small += ["system.renderer.num_samples_per_ray=8"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    script.main(
        ["--threestudio-root", root, "--workdir", str(workdir), "--site-dir", str(LAUNCH_SITE), "--site-dir", root]
        + ["--site-dir", str(EXTENSION_DIR), "--seconds", "600", "--max-steps", "2", "--check-every", "2"]
        + ["--views", "3", "--out", str(tmp_path / "out"), *small]
    )
    result = json.loads((tmp_path / "out" / "a_red_mug-seed0" / "race.json").read_text())
    for label in ("baseline", "carv"):
        curve = result[label]["curve"]
        assert [seconds == 0 for seconds, _ in curve] == [True, False] and all(0 < v <= 1 for _, v in curve)
    assert result["baseline"]["curve"][0] == result["carv"]["curve"][0]  # same seed: the same untrained scene
    report = json.loads((tmp_path / "out" / "race-threestudio.json").read_text())
    assert (
        report["race"]["comparisons"] == 1
        and (tmp_path / "out" / "a_red_mug-seed0" / "ground_truth_vs_time.png").is_file()
    )
