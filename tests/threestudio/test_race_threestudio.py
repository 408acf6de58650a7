"""The ground-truth race on threestudio's path: its test cameras are threestudio's, and scripts/race_threestudio.py
runs launch.py end to end (shrunk to a few steps) where the test-only CPU stand-ins of launch_site/ are present."""

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from carv.pipeline.ground_truth import threestudio_test_batch, threestudio_val_batch

from .conftest import EXTENSION_DIR, HERE, PROJECT_ROOT, THREESTUDIO_ROOT

LAUNCH_SITE = Path(os.environ.get("CARV_LAUNCH_SITE") or HERE / "launch_site")


def threestudio_eval_dataset(split: str, n_views: int):
    """threestudio's own RandomCameraDataset of a split at 24 x 24, the toy config's eval distance and fovy."""
    from threestudio.data.uncond import RandomCameraDataModuleConfig, RandomCameraDataset
    from threestudio.utils.config import parse_structured

    options = {"eval_height": 24, "eval_width": 24, "eval_camera_distance": 2.25, "eval_fovy_deg": 45.0}
    return RandomCameraDataset(
        parse_structured(RandomCameraDataModuleConfig, {**options, f"n_{split}_views": n_views}), split
    )


def assert_same_cameras(ours, dataset) -> None:
    torch.testing.assert_close(ours.cameras.c2w, dataset.c2w)
    torch.testing.assert_close(ours.rays_o, dataset.rays_o)
    torch.testing.assert_close(ours.rays_d, dataset.rays_d)
    torch.testing.assert_close(torch.deg2rad(ours.cameras.fovy), dataset.fovy)
    torch.testing.assert_close(torch.deg2rad(ours.cameras.azimuth), dataset.azimuth)


def test_ground_truth_cameras_are_threestudios_test_cameras(threestudio):
    assert_same_cameras(threestudio_test_batch(9, 15.0, 2.25, 45.0, 24), threestudio_eval_dataset("test", 9))


@pytest.mark.parametrize("n_val_views", [1, 8])
def test_ground_truth_cameras_are_threestudios_val_cameras(threestudio, n_val_views):
    """The race's checks score the validation stage: its cameras are threestudio's val split (the first and last
    views differ), not the test split's."""
    dataset = threestudio_eval_dataset("val", n_val_views)
    assert_same_cameras(threestudio_val_batch(n_val_views, 15.0, 2.25, 45.0, 24), dataset)


def test_three_eval_cameras_fail_in_threestudio_and_are_refused_here(threestudio):
    with pytest.raises(RuntimeError, match="cross"):
        threestudio_eval_dataset("val", 3)
    with pytest.raises(ValueError, match="3 val cameras"):
        threestudio_val_batch(3, 15.0, 2.25, 45.0, 24)


def test_the_carv_system_stops_before_its_logged_seconds_pass_the_budget(threestudio):
    """Before a step as long as the last would pass the budget; render + guidance + backward count (encode and
    teacher are inside guidance); 0 is no budget."""
    from carv.timing import PhaseClock

    mixin = sys.modules["threestudio-carv.system"].PhaseTimingMixin

    class Base:
        def on_train_batch_end(self, outputs, batch, batch_idx):
            self.base_called = True

    system = type("System", (mixin, Base), {})()
    for budget, last_backward, stops in ((7.0, 1.5, False), (6.9, 1.5, True), (0.0, 1.5, False)):
        system.phase_clock = PhaseClock({"render": 1.0, "guidance": 2.0, "teacher": 100.0, "backward": 1.5})
        system.phase_clock.last = {"render": 0.5, "guidance": 0.5, "teacher": 50.0, "backward": last_backward}
        system.cfg, system.trainer = SimpleNamespace(max_train_seconds=budget), SimpleNamespace(should_stop=False)
        system.on_train_batch_end(None, None, 0)  # spent 4.5, the last step 2.5: the next would end at 7
        assert system.trainer.should_stop is stops and system.base_called


@pytest.mark.skipif(not (LAUNCH_SITE / "sitecustomize.py").is_file(), reason="no test-only launch_site/ stand-ins")
def test_race_through_launch(tmp_path, monkeypatch):
    """Both sides train 2 steps in one launch.py each; the validation stage checks the scene before the first step
    and after each (all in the training process), and race.json holds curves on the logged training seconds."""
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
    monkeypatch.setenv("CARV_CLOCK", "wall")  # main sets it for its subprocesses; monkeypatch restores it
    script.main(
        ["--threestudio-root", root, "--workdir", str(workdir), "--site-dir", str(LAUNCH_SITE), "--site-dir", root]
        + ["--site-dir", str(EXTENSION_DIR), "--seconds", "600", "--max-steps", "2", "--check-every", "1"]
        + ["--views", "1", "--clock", "process", "--out", str(tmp_path / "out"), *small]
    )
    result = json.loads((tmp_path / "out" / "a_red_mug-seed0" / "race.json").read_text())
    budget = min(result[label]["train_seconds"] for label in ("baseline", "carv"))  # max_steps stopped both
    assert result["clock"] == "process" and result["budget_seconds"] == budget
    for label in ("baseline", "carv"):
        trial = tmp_path / "out" / label / "a_red_mug-seed0"
        logged, curve = script.training_seconds(trial), script.quality_curve(trial, "a red mug", 1)
        assert len(logged) == 3 and result[label]["train_seconds"] == logged[-1]  # one logged row per step
        assert [seconds for seconds, _ in curve] == logged and all(0 < v <= 1 for _, v in curve)  # checks 0, 1, 2
        assert result[label]["curve"] == [list(point) for point in curve if point[0] <= budget]
        assert logged[0] == 0 < logged[1] < logged[2] and not result[label]["reached_budget"]
        assert result[label]["final_test"]["step"] == 2 and 0 < result[label]["final_test"]["iou"] <= 1
    assert result["baseline"]["curve"][0] == result["carv"]["curve"][0]  # same seed: the same untrained scene
    report = json.loads((tmp_path / "out" / "race-threestudio.json").read_text())
    assert report["race"]["comparisons"] == 1 and report["clock"] == "process" and not report["failed"]
    assert (tmp_path / "out" / "a_red_mug-seed0" / "ground_truth_vs_time.png").is_file()
