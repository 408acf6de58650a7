import math

import pytest
import torch
from omegaconf import OmegaConf

from carv.cameras import GOLDEN
from carv.pipeline.cameras import azimuth_start, batch_azimuths, orbit, train_batch
from carv.pipeline.config import DataConfig, GeometryConfig
from carv.pipeline.field import VoxelGridField
from carv.pipeline.system import step_generator


def test_batch_uniform_azimuth_puts_one_camera_in_each_slice():
    azimuth = batch_azimuths(6, (-180.0, 180.0), True, torch.Generator().manual_seed(0))
    slice_index = ((azimuth + 180.0) // 60.0).long()
    assert slice_index.tolist() == list(range(6))


def test_train_batch_respects_ranges_and_shapes():
    config = OmegaConf.structured(DataConfig(batch_size=3, width=8, height=6))
    batch = train_batch(config, torch.Generator().manual_seed(1))
    assert batch.rays_o.shape == batch.rays_d.shape == (3, 6, 8, 3)
    assert ((batch.cameras.distance >= 1.5) & (batch.cameras.distance <= 2.0)).all()
    assert torch.allclose(batch.rays_d.norm(dim=-1), torch.ones(3, 6, 8))


def test_turntable_is_threestudios_linspace():
    config = OmegaConf.structured(DataConfig())
    views = orbit(config, 5, endpoint=True)
    assert torch.allclose(views.cameras.azimuth, torch.tensor([0.0, 90.0, 180.0, 270.0, 360.0]))
    assert views.rays_o.shape == (5, 64, 64, 3)


def test_grid_value_is_read_back_at_its_voxel():
    field = VoxelGridField(GeometryConfig(grid_resolution=5, radius=1.0, density_blob_scale=0.0))
    with torch.no_grad():
        field.density_grid[0, 0, 1, 2, 3] = 7.0  # grid axes (D, H, W) hold positions' (z, y, x)
    position = torch.tensor([[[0.5, 0.0, -0.5]]])  # x -> W index 3, y -> H index 2, z -> D index 1
    assert torch.allclose(field.raw(position)[0, 0, 0], torch.tensor(7.0))
    density, rgb = field(position, position)
    assert torch.allclose(density, torch.nn.functional.softplus(torch.tensor(7.0)))
    assert torch.allclose(rgb, torch.full((1, 1, 3), 0.5))


def test_magic3d_blob_makes_the_centre_dense_at_initialisation():
    field = VoxelGridField(GeometryConfig())
    density, _ = field(torch.tensor([[[0.0, 0.0, 0.0], [0.9, 0.9, 0.9]]]), torch.zeros(1, 2, 3))
    assert density[0, 0] > 9.0 and density[0, 1] < 0.01


def test_shading_normals_of_the_initial_blob_point_outward_and_light_them():
    field = VoxelGridField(GeometryConfig(grid_resolution=8))
    positions = torch.tensor([[[0.3, 0.0, 0.0], [0.0, 0.0, -0.3]]])
    assert torch.allclose(field.normals(positions), torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]]), atol=1e-6)
    light = torch.tensor([[1.0, 0.0, 0.0]])
    _, rgb = field.shaded(positions, light, ambient=0.3)
    assert torch.allclose(rgb[0, :, 0], torch.tensor([0.5, 0.5 * 0.3]))


def data_config(sampling: str, renders: int = 4):
    return OmegaConf.structured(DataConfig(batch_size=renders, width=2, height=2, carv_azimuth_sampling=sampling))


def training_azimuths(config, seed: int, step: int) -> torch.Tensor:
    """The azimuths of training step `step` of a run seeded `seed`, as TextTo3DSystem draws them."""
    batch = train_batch(config, step_generator(seed, step), step=step, start=azimuth_start(seed))
    return (batch.cameras.azimuth.double() + 180.0) / 360.0


@pytest.mark.parametrize("sampling", ["stratified", "golden"])
def test_training_cameras_fall_one_per_stratum_and_repeat_on_resume(sampling):
    config = data_config(sampling)
    for step in range(20):
        u = training_azimuths(config, 3, step)
        assert sorted((u * 4).floor().long().tolist()) == [0, 1, 2, 3]
        assert torch.equal(u, training_azimuths(config, 3, step))  # a resumed run draws the same


def test_golden_training_cameras_rotate_by_the_golden_ratio_and_start_uniformly_per_run():
    config = data_config("golden")
    strata = [(training_azimuths(config, 0, step).min().item() * 4) % 1.0 for step in range(4)]
    assert [(b - a) % 1.0 for a, b in zip(strata, strata[1:], strict=False)] == pytest.approx([GOLDEN] * 3, abs=1e-5)
    runs, config = 500, data_config("golden", renders=2)  # camera 0 of step 50 over runs seeded 0..runs-1
    u = torch.tensor([training_azimuths(config, seed, 50)[0].item() for seed in range(runs)]).sort().values
    i = torch.arange(1, runs + 1, dtype=torch.float64)
    distance = max((i / runs - u).max().item(), (u - (i - 1) / runs).max().item())
    assert distance < math.sqrt(math.log(2.0 / 0.01) / (2.0 * runs))  # Kolmogorov-Smirnov within the DKW bound
