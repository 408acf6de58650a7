"""Tests of the batched CPU volume renderer against closed-form opacities."""

import math

import pytest
import torch

from carv.render import composite, ray_box_bounds, render_rays, stratified_samples


def _constant_field(sigma: float, color: tuple[float, float, float]):
    def field(positions, directions):
        density = torch.full(positions.shape[:2], sigma, dtype=positions.dtype)
        rgb = torch.tensor(color, dtype=positions.dtype).expand(*positions.shape[:2], 3)
        return density, rgb

    return field


def _rays_through_box(n: int, generator: torch.Generator):
    """Rays from points outside the unit box aimed at random points inside it."""
    rays_o = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1) * 4.0
    targets = torch.rand(n, 3, generator=generator) * 1.6 - 0.8
    rays_d = torch.nn.functional.normalize(targets - rays_o, dim=-1)
    return rays_o, rays_d


@pytest.mark.parametrize("stratified", [False, True])
def test_constant_density_has_analytic_opacity(stratified):
    generator = torch.Generator().manual_seed(0)
    rays_o, rays_d = _rays_through_box(64, generator)
    sigma, radius = 1.3, 1.0
    out = render_rays(
        _constant_field(sigma, (0.2, 0.5, 0.9)),
        rays_o,
        rays_d,
        torch.zeros(3),
        radius=radius,
        num_samples=7,
        stratified=stratified,
        generator=generator,
    )
    near, far = ray_box_bounds(rays_o, rays_d, radius)
    expected = 1.0 - torch.exp(-sigma * (far - near))
    torch.testing.assert_close(out.opacity[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_axis_aligned_slab_opacity_is_one_minus_exp_sigma_length():
    rays_o = torch.tensor([[0.0, 0.0, -5.0], [0.3, -0.2, 5.0]])
    rays_d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    out = render_rays(_constant_field(0.7, (1.0, 1.0, 1.0)), rays_o, rays_d, torch.zeros(3), radius=1.5, num_samples=5)
    expected = 1.0 - math.exp(-0.7 * 3.0)
    torch.testing.assert_close(out.opacity[:, 0], torch.full((2,), expected))


def test_colour_composites_over_background():
    generator = torch.Generator().manual_seed(1)
    rays_o, rays_d = _rays_through_box(16, generator)
    color, background = torch.tensor([0.2, 0.5, 0.9]), torch.tensor([1.0, 0.0, 0.25])
    out = render_rays(
        _constant_field(2.0, tuple(color.tolist())), rays_o, rays_d, background, radius=1.0, num_samples=9
    )
    expected = color * out.opacity + background * (1.0 - out.opacity)
    torch.testing.assert_close(out.rgb, expected)


def test_zero_density_returns_background_exactly():
    generator = torch.Generator().manual_seed(2)
    rays_o, rays_d = _rays_through_box(32, generator)
    background = torch.rand(32, 3, generator=generator)
    out = render_rays(_constant_field(0.0, (0.3, 0.3, 0.3)), rays_o, rays_d, background, radius=1.0, num_samples=8)
    assert torch.equal(out.rgb, background)
    assert torch.equal(out.opacity, torch.zeros(32, 1))


def test_ray_missing_the_box_sees_the_background():
    rays_o = torch.tensor([[0.0, 3.0, -5.0]])
    rays_d = torch.tensor([[0.0, 0.0, 1.0]])
    out = render_rays(
        _constant_field(5.0, (1.0, 0.0, 0.0)), rays_o, rays_d, torch.tensor([0.1, 0.2, 0.3]), radius=1.0, num_samples=4
    )
    torch.testing.assert_close(out.rgb, torch.tensor([[0.1, 0.2, 0.3]]))


def test_stratified_samples_tile_the_interval_and_follow_the_generator():
    near, far = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1.5, 4.0, 2.0])
    a = stratified_samples(near, far, 6, generator=torch.Generator().manual_seed(3))
    b = stratified_samples(near, far, 6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.t_starts, b.t_starts) and torch.equal(a.t_ends, b.t_ends)
    assert torch.equal(a.t_ends[:, :-1], a.t_starts[:, 1:])
    torch.testing.assert_close(a.t_starts[:, 0], near)
    torch.testing.assert_close(a.t_ends[:, -1], far)
    assert bool((a.t_ends >= a.t_starts).all())


def test_gradient_reaches_density_and_colour():
    samples = stratified_samples(torch.zeros(2), torch.ones(2), 4, stratified=False)
    density = torch.full((2, 4), 0.5, requires_grad=True)
    rgb = torch.full((2, 4, 3), 0.5, requires_grad=True)
    composite(samples, density, rgb, torch.zeros(3)).rgb.sum().backward()
    assert density.grad.abs().sum() > 0 and rgb.grad.abs().sum() > 0


def test_bad_input_raises():
    with pytest.raises(ValueError, match="num_samples"):
        stratified_samples(torch.zeros(2), torch.ones(2), 0)
    with pytest.raises(ValueError, match="rays_o and rays_d"):
        ray_box_bounds(torch.zeros(2, 3), torch.zeros(3, 3), 1.0)
    with pytest.raises(ValueError, match="radius"):
        ray_box_bounds(torch.zeros(2, 3), torch.ones(2, 3), 0.0)
    samples = stratified_samples(torch.zeros(2), torch.ones(2), 4)
    with pytest.raises(ValueError, match="density"):
        composite(samples, torch.zeros(2, 3), torch.zeros(2, 4, 3), torch.zeros(3))
