"""Cameras follow threestudio's random-camera and view-dependent-prompt conventions."""

import math

import pytest
import torch

from carv.cameras import VIEW_NAMES, make_cameras, rays, sample_cameras, shift_azimuth, view_class


def test_positions_match_threestudio_formula():
    cams = make_cameras(torch.tensor([30.0, 0.0]), torch.tensor([60.0, -90.0]), torch.tensor([2.0, 1.5]), 50.0)
    e, a = math.radians(30.0), math.radians(60.0)
    expected = torch.tensor([2 * math.cos(e) * math.cos(a), 2 * math.cos(e) * math.sin(a), 2 * math.sin(e)])
    torch.testing.assert_close(cams.c2w[0, :3, 3], expected)
    torch.testing.assert_close(cams.c2w[1, :3, 3], torch.tensor([0.0, -1.5, 0.0]), atol=1e-6, rtol=0)


def test_c2w_is_a_rotation_looking_at_the_origin_with_z_up():
    cams = sample_cameras(64, generator=torch.Generator().manual_seed(0))
    rot = cams.c2w[:, :3, :3]
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3).expand(64, 3, 3), atol=1e-5, rtol=0)
    forward = -rot[:, :, 2]
    torch.testing.assert_close(forward, -torch.nn.functional.normalize(cams.c2w[:, :3, 3], dim=-1), atol=1e-5, rtol=0)
    assert torch.all(rot[:, 2, 1] > 0), "camera up must have a positive world-z component"
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(64), atol=1e-5, rtol=0)


def test_front_camera_sees_plus_y_on_the_right():
    cams = make_cameras(0.0, 0.0, 2.0, 60.0)
    torch.testing.assert_close(cams.c2w[0, :3, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)


def test_samples_stay_in_their_ranges():
    cams = sample_cameras(2000, generator=torch.Generator().manual_seed(1))
    for values, (low, high) in [
        (cams.elevation, (-10, 45)),
        (cams.azimuth, (-180, 180)),
        (cams.distance, (1.5, 2.0)),
        (cams.fovy, (40, 70)),
    ]:
        assert values.min() >= low and values.max() <= high
        assert values.min() < low + 0.05 * (high - low) and values.max() > high - 0.05 * (high - low)


def test_same_generator_seed_same_cameras():
    a = sample_cameras(8, generator=torch.Generator().manual_seed(3))
    b = sample_cameras(8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.c2w, b.c2w)


def test_view_class_follows_threestudio_thresholds():
    cases = [
        (0, 0, "front"),
        (0, 44.9, "front"),
        (0, 45.0, "side"),
        (0, -45.0, "side"),
        (0, 90, "side"),
        (0, 135.0, "side"),
        (0, 135.1, "back"),
        (0, -179, "back"),
        (0, 180, "back"),
        (0, 540, "back"),
        (60.0, 0, "front"),
        (60.1, 0, "overhead"),
        (80, 180, "overhead"),
    ]
    elevation = torch.tensor([c[0] for c in cases], dtype=torch.float32)
    azimuth = torch.tensor([c[1] for c in cases], dtype=torch.float32)
    got = [VIEW_NAMES[i] for i in view_class(elevation, azimuth)]
    assert got == [c[2] for c in cases]


def test_shift_azimuth_wraps_to_minus_180_180():
    torch.testing.assert_close(shift_azimuth(torch.tensor([190.0, -190.0, 360.0])), torch.tensor([-170.0, 170.0, 0.0]))


def test_rays_are_unit_and_centre_ray_hits_the_origin():
    cams = sample_cameras(4, generator=torch.Generator().manual_seed(2))
    origins, directions = rays(cams.c2w, cams.fovy, 8, 8)
    assert origins.shape == directions.shape == (4, 8, 8, 3)
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(4, 8, 8))
    centre = directions[:, 3:5, 3:5].mean(dim=(1, 2))
    torch.testing.assert_close(
        torch.nn.functional.normalize(centre, dim=-1),
        -torch.nn.functional.normalize(origins[:, 0, 0], dim=-1),
        atol=1e-5,
        rtol=0,
    )


def test_vertical_field_of_view():
    cams = make_cameras(0.0, 0.0, 2.0, 60.0)
    _, directions = rays(cams.c2w, cams.fovy, 64, 64)
    top = cams.c2w[0, :3, :3].T @ directions[0, 0, 32]
    assert float(top[1] / -top[2]) == pytest.approx(31.5 / 32.0 * math.tan(math.radians(30.0)), rel=1e-5)
    assert directions[0, 0, 32, 2] > 0, "row 0 is the top of the image"


def test_bad_input_raises():
    with pytest.raises(ValueError, match="elevation"):
        sample_cameras(4, elevation_range=(0, 90))
    with pytest.raises(ValueError, match="n must be"):
        sample_cameras(0)
    with pytest.raises(ValueError, match="c2w"):
        rays(torch.eye(4), 60.0, 8, 8)
