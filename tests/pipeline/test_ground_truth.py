"""Ground truth on the CPU pipeline's camera path and on threestudio's test-stage frames."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from carv.cameras import make_cameras
from carv.pipeline.cameras import orbit
from carv.pipeline.config import load_config
from carv.pipeline.field import magic3d_blob
from carv.pipeline.ground_truth import (
    GroundTruth,
    evenly_spaced,
    pipeline_ground_truth,
    score_test_stage,
    split_test_frame,
)
from carv.pipeline.runner import text_to_3d
from carv.pipeline.system import TextTo3DSystem
from carv.toyworld.ground_truth import PSNR_CAP, score_views, true_views
from carv.toyworld.shapes import make_shape
from carv.toyworld.world import COLOURS

from ..helpers import shrunken

PROMPT = "a red mug"
BEST = {"iou": 1.0, "masked_psnr": PSNR_CAP, "ssim": 1.0}


def best(scores: dict) -> bool:
    return all(scores[k] == v for k, v in BEST.items())


def test_the_true_object_at_the_evaluation_views_scores_the_best_possible_value():
    """orbit(endpoint=False) of the config is at (eval elevation, k * 360 / n, eval distance, eval fovy)."""
    config = load_config("cpu-carv", ["data.eval_width=24", "data.eval_height=24"], prompt=PROMPT)
    truth = pipeline_ground_truth(config)
    d = config.data
    cameras = make_cameras(d.eval_elevation_deg, torch.arange(8) * 45.0, d.eval_camera_distance, d.eval_fovy_deg)
    made = true_views(PROMPT, cameras, 24, 24)
    assert best(truth.score(made.rgb, made.coverage))
    assert pipeline_ground_truth(load_config("cpu-carv", [], prompt="a photo of a dog")) is None


def true_object_scene(config) -> TextTo3DSystem:
    """A voxel-grid system whose density is the true mug's (sharp at its surface) and whose colour is red."""
    system = TextTo3DSystem(config)
    g = config.system.geometry
    axis = torch.linspace(-g.radius, g.radius, g.grid_resolution)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")  # the grid's (D, H, W) axes are positions' (z, y, x)
    positions = torch.stack([x, y, z], -1)
    sdf = make_shape("mug").sdf(positions.reshape(-1, 3)).reshape(positions.shape[:-1])
    raw = (-1e4 * sdf).clamp(-200.0, 200.0) - magic3d_blob(positions, g.density_blob_scale, g.density_blob_std)
    with torch.no_grad():
        system.field.density_grid.copy_(raw[None, None])
        system.field.colour_grid.copy_(torch.logit(torch.tensor(COLOURS["red"]))[None, :, None, None, None])
    return system


def test_a_scene_built_from_the_true_object_scores_best_at_the_right_cameras():
    """Through the pipeline's own renderer and cameras: any camera or image convention mismatch scores lower."""
    overrides = ["data.eval_width=40", "data.eval_height=40", "system.geometry.grid_resolution=48"]
    config = load_config("cpu-carv", [*overrides, "system.renderer.num_samples_per_ray=64"], prompt=PROMPT)
    batch = orbit(config.data, 4, endpoint=False)
    truth = GroundTruth(PROMPT, batch)
    out = true_object_scene(config).render_outputs(batch)
    matched = truth.score(out["rgb"], out["opacity"])
    assert matched["iou"] > 0.85
    c = batch.cameras
    wrong_cameras = {
        "azimuth + 90": (c.elevation, c.azimuth + 90.0),
        "mirrored azimuth": (c.elevation, -c.azimuth),
        "negated elevation": (-c.elevation, c.azimuth),
    }
    for name, (elevation, azimuth) in wrong_cameras.items():
        wrong = true_views(PROMPT, make_cameras(elevation, azimuth, c.distance, c.fovy), 40, 40)
        assert score_views(out["rgb"], out["opacity"], wrong)["iou"] < matched["iou"], name
    for dims in (1, 2):  # rows (up/down) and columns (left/right) of the images
        flipped = truth.score(out["rgb"].flip(dims), out["opacity"].flip(dims))
        assert flipped["iou"] < matched["iou"], dims


def test_runs_record_ground_truth_beside_the_judge(toy_teacher, random_judge, tmp_path):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=2), "evaluation.every_n_steps=1"]
    metrics = json.loads((text_to_3d(PROMPT, "cpu-carv", overrides).run_dir / "metrics.json").read_text())
    assert set(metrics["ground_truth"]) == {*BEST, "views"} and metrics["ground_truth"]["views"] == 2
    assert [h["step"] for h in metrics["fidelity_history"]] == [0, 1, 2]
    for entry in metrics["fidelity_history"]:
        assert 0.0 < entry["ground_truth"]["iou"] <= 1.0 and "fidelity" in entry
    assert metrics["fidelity_history"][-1]["ground_truth"] == metrics["ground_truth"]  # same views, same scene


def test_a_run_stopped_by_its_time_budget_checks_its_final_scene(toy_teacher, random_judge, tmp_path):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=50), "evaluation.every_n_steps=10"]
    metrics = text_to_3d(PROMPT, "cpu-carv", [*overrides, "trainer.max_train_seconds=1e-6"]).metrics
    assert metrics["steps"] == 1 and [h["step"] for h in metrics["fidelity_history"]] == [0, 1]
    assert metrics["fidelity_history"][-1]["ground_truth"] == metrics["ground_truth"]


TEST_VIEWS, ELEVATION, DISTANCE, FOVY, SIZE = 12, 15.0, 2.25, 45.0, 32


def write_test_stage(folder, rgb: torch.Tensor, opacity: torch.Tensor, normal: bool) -> None:
    """PNGs as threestudio's test_step saves them: rgb | [normal |] opacity, H x H panels side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(rgb.shape[0]):
        panels = (
            [rgb[i]] + ([torch.full_like(rgb[i], 0.5)] if normal else []) + [opacity[i, ..., None].expand(-1, -1, 3)]
        )
        image = (torch.cat(panels, dim=1).numpy() * 255.0).round().astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i}.png")


def threestudio_test_cameras(azimuth_offset: float = 0.0):
    """threestudio's RandomCameraDataset(split='test'): azimuth linspace(0, 360, n_test_views)."""
    azimuth = torch.linspace(0.0, 360.0, TEST_VIEWS) + azimuth_offset
    return make_cameras(ELEVATION, azimuth, DISTANCE, FOVY)


@pytest.mark.parametrize("normal", [False, True])
def test_threestudio_test_frames_of_the_true_object_score_best(tmp_path, normal):
    views = true_views(PROMPT, threestudio_test_cameras(), SIZE, SIZE)
    write_test_stage(tmp_path / "it10-test", views.rgb, views.coverage, normal)
    stage = dict(n_test_views=TEST_VIEWS, elevation=ELEVATION, distance=DISTANCE, fovy=FOVY, views=4)
    scores = score_test_stage(tmp_path / "it10-test", PROMPT, **stage)
    assert scores["iou"] > 0.999 and scores["masked_psnr"] > 45.0 and scores["ssim"] > 0.999  # 8-bit PNG rounding
    turned = true_views(PROMPT, threestudio_test_cameras(azimuth_offset=60.0), SIZE, SIZE)
    write_test_stage(tmp_path / "turned", turned.rgb, turned.coverage, normal)
    worse = score_test_stage(tmp_path / "turned", PROMPT, **stage)
    assert worse["iou"] < 0.95 and worse["masked_psnr"] < 30.0


def test_test_frames_split_into_rgb_and_opacity():
    frame = np.zeros((4, 12, 3), dtype=np.uint8)
    frame[:, :4] = 255
    frame[:, 8:] = 51
    rgb, opacity = split_test_frame(frame)
    assert rgb.shape == (4, 4, 3) and (rgb == 1.0).all() and opacity.shape == (4, 4) and (opacity == 0.2).all()
    with pytest.raises(ValueError, match="panels"):
        split_test_frame(np.zeros((4, 6, 3), dtype=np.uint8))


def test_evenly_spaced_views_of_a_turntable():
    assert evenly_spaced(120, 8) == [0, 15, 30, 45, 60, 74, 89, 104]
    assert evenly_spaced(5, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        evenly_spaced(5, 5)
