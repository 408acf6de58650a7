"""carv-batched-volume-renderer inside threestudio: outputs, background, eval chunking."""

import pytest
import torch


@pytest.fixture
def renderer(threestudio):
    geometry = threestudio.find("implicit-volume")(
        {
            "radius": 1.0,
            "normal_type": "finite_difference",
            "pos_encoding_config": {"otype": "ProgressiveBandFrequency", "n_frequencies": 4},
        }
    )
    material = threestudio.find("no-material")({"requires_normal": True})
    background = threestudio.find("solid-color-background")({"color": (0.2, 0.4, 0.6)})
    return threestudio.find("carv-batched-volume-renderer")(
        {"radius": 1.0, "num_samples_per_ray": 8}, geometry=geometry, material=material, background=background
    )


def camera_rays(batch=2, size=6):
    """Rays from z = -3 towards the box, fanned out so that the corner rays miss it."""
    ys, xs = torch.meshgrid(torch.linspace(-1.5, 1.5, size), torch.linspace(-1.5, 1.5, size), indexing="ij")
    directions = torch.nn.functional.normalize(torch.stack([xs, ys, torch.full_like(xs, 3.0)], dim=-1), dim=-1)
    rays_o = torch.tensor([0.0, 0.0, -3.0]).expand(batch, size, size, 3)
    return {
        "rays_o": rays_o,
        "rays_d": directions.expand(batch, size, size, 3),
        "light_positions": torch.ones(batch, 3),
    }


def test_training_outputs_have_threestudio_shapes(renderer):
    renderer.train()
    out = renderer(**camera_rays())
    assert out["comp_rgb"].shape == (2, 6, 6, 3) and out["opacity"].shape == (2, 6, 6, 1)
    assert out["weights"].shape == out["t_points"].shape == (2 * 36 * 8, 1)
    assert out["t_dirs"].shape == out["normal"].shape == (2 * 36 * 8, 3)
    assert out["comp_rgb"].requires_grad


def test_rays_that_miss_show_the_background(renderer):
    renderer.eval()
    out = renderer(**camera_rays())
    torch.testing.assert_close(out["comp_rgb"][:, 0, 0], torch.tensor([0.2, 0.4, 0.6]).expand(2, 3))
    assert torch.equal(out["opacity"][:, 0, 0], torch.zeros(2, 1))
    assert bool((out["opacity"][:, 3, 3] > 0).all())


def test_eval_chunks_give_the_unchunked_image(renderer):
    renderer.eval()
    whole = renderer(**camera_rays())
    renderer.cfg.eval_chunk_size = 7
    chunked = renderer(**camera_rays())
    for key in ("comp_rgb", "opacity", "depth", "comp_normal"):
        torch.testing.assert_close(chunked[key], whole[key])


def test_given_background_colour_per_view(renderer):
    renderer.eval()
    out = renderer(**camera_rays(), bg_color=torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(out["comp_rgb"][:, 0, 0], torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
