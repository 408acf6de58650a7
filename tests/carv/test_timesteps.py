"""The sampler contract, run over every proposal x {IID, stratified} (STYLE.md's shared mixin)."""

import pytest
import torch

import carv
from carv.timesteps import inverse_cdf

from ..helpers import two_sided_z, variance_upper_bound

MIN_STEP, MAX_STEP = 20, 980
N_DRAWS = 20_000


def trained_adaptive(**kwargs):
    """An adaptive sampler after feeding it squared norms that peak mid-schedule."""
    sampler = carv.make_timestep_sampler("adaptive", min_step=MIN_STEP, max_step=MAX_STEP, **kwargs)
    t = torch.arange(MIN_STEP, MAX_STEP + 1)
    sampler.update(t, (torch.exp(-(((t - 400.0) / 150.0) ** 2)) + 0.05) ** 2)
    return sampler


PROPOSALS = {
    "uniform": lambda **kw: carv.make_timestep_sampler("uniform", min_step=MIN_STEP, max_step=MAX_STEP, **kw),
    "sds": lambda **kw: carv.make_timestep_sampler("sds", min_step=MIN_STEP, max_step=MAX_STEP, **kw),
    "fantasia3d": lambda **kw: carv.make_timestep_sampler("fantasia3d", min_step=MIN_STEP, max_step=MAX_STEP, **kw),
    "gaussian": lambda **kw: carv.make_timestep_sampler(
        "gaussian", min_step=MIN_STEP, max_step=MAX_STEP, gaussian_peak=0.4, gaussian_width=0.15, **kw
    ),
    "table": lambda **kw: carv.make_timestep_sampler(
        "table", min_step=MIN_STEP, max_step=MAX_STEP, table=torch.linspace(1.0, 3.0, 1000) ** 2, **kw
    ),
    "adaptive": trained_adaptive,
}
MODES = {"iid": {}, "stratified": {"stratified": True}}


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_test_functions(jitter: float = 0.1) -> torch.Tensor:
    """Random positive test functions h(t) over the support [4, max - min + 1]: smooth trend plus jitter."""
    g = seeded(123)
    x = torch.linspace(0, 1, MAX_STEP - MIN_STEP + 1, dtype=torch.float64)
    coeffs = torch.rand(4, 3, generator=g, dtype=torch.float64)
    smooth = coeffs[:, :1] + coeffs[:, 1:2] * torch.sin(6 * x * coeffs[:, 2:3]) ** 2
    return smooth + jitter * torch.rand(4, x.numel(), generator=g, dtype=torch.float64)


@pytest.fixture(params=list(PROPOSALS), ids=str)
def proposal(request):
    return request.param


@pytest.fixture(params=list(MODES), ids=str)
def mode(request):
    return request.param


@pytest.fixture
def sampler(proposal, mode):
    return PROPOSALS[proposal](**MODES[mode])


class TestSamplerContract:
    def test_range_and_dtype(self, sampler):
        draw = sampler.sample(4096, generator=seeded())
        assert draw.t.dtype == torch.int64 and draw.t.shape == (4096,)
        assert draw.weight.dtype == torch.float32 and draw.weight.shape == (4096,)
        assert draw.t.min() >= MIN_STEP and draw.t.max() <= MAX_STEP
        assert torch.isfinite(draw.weight).all() and (draw.weight > 0).all()

    def test_same_seed_same_draws(self, sampler):
        first, second = sampler.sample(257 * 3, generator=seeded(7)), sampler.sample(257 * 3, generator=seeded(7))
        assert torch.equal(first.t, second.t) and torch.equal(first.weight, second.weight)
        third = sampler.sample(257 * 3, generator=seeded(8))
        assert not torch.equal(first.t, third.t)

    def test_weight_is_p_over_q_of_the_drawn_t(self, sampler):
        draw = sampler.sample(1000, generator=seeded())
        q = sampler.proposal_pmf()
        expected = (sampler.target_pmf() / q)[draw.t - MIN_STEP].float()
        torch.testing.assert_close(draw.weight, expected, rtol=0, atol=0)

    def test_empirical_pmf_matches_q(self, sampler):
        draw = sampler.sample(N_DRAWS, generator=seeded(1))
        edges = torch.linspace(MIN_STEP, MAX_STEP + 1, 21).long()
        bin_of = torch.bucketize(draw.t, edges[1:-1], right=True)
        counts = torch.bincount(bin_of, minlength=20).double()
        q = sampler.proposal_pmf()
        probability = torch.stack(
            [q[lo - MIN_STEP : hi - MIN_STEP].sum() for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        )
        expected = N_DRAWS * probability
        standard_error = (N_DRAWS * probability * (1 - probability)).sqrt()
        z = two_sided_z(comparisons=20)
        assert ((counts - expected).abs() <= z * standard_error).all(), (counts - expected) / standard_error

    def test_mean_weight_is_one(self, sampler):
        weight = sampler.sample(N_DRAWS, generator=seeded(2)).weight.double()
        standard_error = weight.std() / N_DRAWS**0.5
        assert abs(weight.mean().item() - 1.0) <= two_sided_z() * standard_error.item() + 1e-12

    def test_importance_weighted_mean_is_unbiased(self, sampler):
        h = random_test_functions()
        draw = sampler.sample(N_DRAWS, generator=seeded(3))
        values = draw.weight.double() * h[:, draw.t - MIN_STEP]
        exact = (sampler.target_pmf() * h).sum(dim=1)
        standard_error = values.std(dim=1) / N_DRAWS**0.5
        z = two_sided_z(comparisons=h.shape[0])
        assert ((values.mean(dim=1) - exact).abs() <= z * standard_error).all()


@pytest.mark.parametrize("proposal_name", list(PROPOSALS))
def test_stratified_variance_below_iid(proposal_name):
    h = random_test_functions(jitter=0.0)[0]  # stratification removes the smooth part of the variance
    n, repeats = 64, 400
    iid, stratified = PROPOSALS[proposal_name](), PROPOSALS[proposal_name](stratified=True)
    q, p = iid.proposal_pmf(), iid.target_pmf()
    weighted = p / q * h
    exact_iid_variance = ((q * weighted**2).sum() - (q * weighted).sum() ** 2).item() / n
    generator = seeded(4)
    estimates = torch.stack(
        [
            (lambda d: (d.weight.double() * h[d.t - MIN_STEP]).mean())(stratified.sample(n, generator))
            for _ in range(repeats)
        ]
    )
    assert variance_upper_bound(estimates) < exact_iid_variance


@pytest.mark.parametrize("proposal_name", list(PROPOSALS))
def test_one_draw_per_stratum(proposal_name):
    strata = 50
    sampler = PROPOSALS[proposal_name](stratified=True, strata=strata)
    cdf = torch.cumsum(sampler.proposal_pmf(), 0)
    below = torch.cat([torch.zeros(1, dtype=torch.float64), cdf[:-1]])
    t_sorted = sampler.sample(strata, generator=seeded(5)).t.sort().values - MIN_STEP
    i = torch.arange(strata, dtype=torch.float64)
    assert (cdf[t_sorted] >= i / strata - 1e-12).all()
    assert (below[t_sorted] < (i + 1) / strata + 1e-12).all()


def test_stratified_uniforms_fill_each_stratum_equally():
    u = carv.stratified_uniforms(60, 20, generator=seeded())
    assert torch.equal(torch.bincount((u * 20).long(), minlength=20), torch.full((20,), 3))
    assert u.min() >= 0 and u.max() < 1


def test_uniform_table_equals_uniform():
    table = carv.make_timestep_sampler(torch.ones(1000), min_step=MIN_STEP, max_step=MAX_STEP)
    uniform = carv.make_timestep_sampler("uniform", min_step=MIN_STEP, max_step=MAX_STEP)
    a, b = table.sample(999, generator=seeded()), uniform.sample(999, generator=seeded())
    assert torch.equal(a.t, b.t) and torch.equal(a.weight, b.weight) and torch.equal(b.weight, torch.ones(999))


def test_table_over_the_range_equals_table_over_the_schedule():
    full = torch.rand(1000, generator=seeded()) + 0.1
    over_range = carv.make_timestep_sampler(full[MIN_STEP : MAX_STEP + 1], min_step=MIN_STEP, max_step=MAX_STEP)
    over_schedule = carv.make_timestep_sampler(full, min_step=MIN_STEP, max_step=MAX_STEP)
    torch.testing.assert_close(over_range.proposal_pmf(), over_schedule.proposal_pmf(), rtol=0, atol=0)


def test_one_stratum_equals_iid():
    for name, build in PROPOSALS.items():
        a = build(stratified=True, strata=1).sample(500, generator=seeded(9))
        b = build().sample(500, generator=seeded(9))
        assert torch.equal(a.t, b.t) and torch.equal(a.weight, b.weight), name


def test_sds_proposal_with_sds_weighting_is_a_constant_scale():
    alphas = carv.stable_diffusion_alphas_cumprod()
    sampler = carv.make_timestep_sampler("sds", min_step=MIN_STEP, max_step=MAX_STEP, alphas_cumprod=alphas)
    draw = sampler.sample(5000, generator=seeded())
    scaled = draw.weight.double() * carv.timestep_weighting(alphas, draw.t, "sds")
    expected_w = (1 - alphas[MIN_STEP : MAX_STEP + 1]).mean()
    torch.testing.assert_close(scaled, expected_w.expand_as(scaled), rtol=1e-6, atol=0)


def test_set_range_moves_p_and_q_together():
    sampler = carv.make_timestep_sampler("sds", min_step=MIN_STEP, max_step=MAX_STEP)
    sampler.set_range(200, 499)
    draw = sampler.sample(4000, generator=seeded())
    assert draw.t.min() >= 200 and draw.t.max() <= 499
    q = sampler.proposal_pmf()
    assert q.shape == (300,)
    torch.testing.assert_close(draw.weight, ((1 / 300) / q[draw.t - 200]).float(), rtol=0, atol=0)


def test_adaptive_learns_the_oracle_shape_with_a_floor():
    sampler = carv.make_timestep_sampler("adaptive", min_step=0, max_step=999, adaptive_bins=10, adaptive_floor=0.2)
    t = torch.arange(1000)
    norm = 1.0 + (t // 100).double()  # ||f|| constant per bin
    sampler.update(t, norm**2)
    learned = norm / norm.sum()
    torch.testing.assert_close(sampler.proposal_pmf(), 0.8 * learned + 0.2 / 1000, rtol=1e-12, atol=0)


def test_adaptive_before_any_update_is_uniform():
    sampler = carv.make_timestep_sampler("adaptive", min_step=MIN_STEP, max_step=MAX_STEP)
    torch.testing.assert_close(sampler.proposal_pmf(), sampler.target_pmf(), rtol=1e-12, atol=0)


def test_effective_sample_size():
    assert carv.effective_sample_size(torch.ones(10)) == pytest.approx(10.0)
    assert carv.effective_sample_size(torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(1.0)


def test_inverse_cdf_picks_smallest_t_with_cdf_at_least_u():
    pmf = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    u = torch.tensor([0.0, 0.2499, 0.25, 0.2501, 0.5, 0.9999])
    assert inverse_cdf(pmf, u).tolist() == [0, 0, 0, 1, 1, 2]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"proposal": "cosine"}, "unknown timestep proposal 'cosine'; valid: uniform, sds"),
        ({"min_step": 500, "max_step": 100}, "min_step <= max_step"),
        ({"min_step": 0, "max_step": 1000}, "< 1000"),
        ({"min_step": -1, "max_step": 10}, "0 <= min_step"),
        ({"proposal": torch.tensor([1.0, -1.0] * 500)}, "negative"),
        ({"proposal": torch.full((1000,), float("nan"))}, "NaN"),
        ({"proposal": torch.zeros(1000)}, "zero total mass"),
        ({"proposal": torch.cat([torch.zeros(500), torch.ones(500)])}, "zero at 480 timestep"),
        ({"proposal": "table"}, "needs table="),
        ({"proposal": "gaussian", "gaussian_width": 0.0}, "gaussian_width"),
        ({"proposal": "gaussian", "gaussian_width": 1e-4, "gaussian_floor": 0.0}, "zero at"),
        ({"proposal": "gaussian", "gaussian_floor": 1.5}, "gaussian_floor"),
        ({"proposal": "adaptive", "adaptive_floor": 0.0}, "adaptive_floor"),
        ({"proposal": "uniform", "gaussian_sigma": 1.0}, "unknown proposal parameter"),
        ({"strata": 4}, "stratified=False"),
    ],
)
def test_bad_input_is_a_clear_value_error(kwargs, message):
    arguments = {"proposal": "uniform", "min_step": MIN_STEP, "max_step": MAX_STEP} | kwargs
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        carv.make_timestep_sampler(arguments.pop("proposal"), **arguments)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_draw_count(n):
    with pytest.raises(ValueError, match="positive integer"):
        carv.make_timestep_sampler("uniform", min_step=0, max_step=9).sample(n)


def test_strata_must_divide_the_draws():
    sampler = carv.make_timestep_sampler("uniform", min_step=0, max_step=9, stratified=True, strata=4)
    with pytest.raises(ValueError, match="split evenly over 4 strata"):
        sampler.sample(6)


def test_gaussian_floor_bounds_the_weights():
    floor = 0.05
    sampler = carv.make_timestep_sampler(
        "gaussian", min_step=MIN_STEP, max_step=MAX_STEP, gaussian_peak=0.3, gaussian_width=0.02, gaussian_floor=floor
    )
    weight_of_index = sampler.target_pmf() / sampler.proposal_pmf()
    size = MAX_STEP - MIN_STEP + 1
    assert weight_of_index.max() <= 1000 / (size * floor)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_generator_draws():
    generator = torch.Generator(device="cuda").manual_seed(0)
    for stratified in (False, True):
        sampler = carv.make_timestep_sampler("sds", min_step=MIN_STEP, max_step=MAX_STEP, stratified=stratified)
        draw = sampler.sample(64, generator=generator, device="cuda")
        assert draw.t.device.type == "cuda" and draw.weight.device.type == "cuda"
