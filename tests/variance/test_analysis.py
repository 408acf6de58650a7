"""The ECM table, recommendation and `auto` choice on planted components with known K*."""

import pytest
import torch

import carv
from carv.variance_model import BASELINE, SETTINGS, Grid, Setting, VarianceModel, fit, summarise

from ..helpers import planted_grid


def planted_fit(sigma_b2: float, sigma_w2: float, stratified: bool, seed: int):
    g = planted_grid(3000, 4, 6, sigma_b2, sigma_w2, seed=seed)
    t = torch.rand(3000, 4, generator=torch.Generator().manual_seed(seed)).argsort(dim=1)
    ones = torch.ones(3000, 4)
    return fit(Grid(g, t, ones, ones, ones), stratified)


def planted_model(a: float, b: float, within_of: dict) -> VarianceModel:
    """sigma_b^2 = 1 everywhere; sigma_w^2 per proposal from within_of (uniform IID is the baseline's)."""
    fitted = {s: planted_fit(1.0, within_of[s.proposal], s.stratified, seed=i) for i, s in enumerate(SETTINGS)}
    return VarianceModel(fitted, carv.CostModel(a, b))


def test_auto_picks_the_known_k_star_and_the_table_its_equal_cost_pairs():
    a, b = 16.0, 1.0  # K* = sqrt(16 sigma_w^2 / sigma_b^2): 8 for sigma_w^2 = 4
    model = planted_model(a, b, {"uniform": 16.0, "sds": 4.0, "gaussian": 9.0, "adaptive": 12.0})
    summary = summarise(model, budget=4 * (a + b), baseline_renders=4)
    assert summary["recommended"]["setting"].startswith("sds")
    assert summary["auto"]["K"] == carv.optimal_k(a, b, 1.0, 4.0) == 8
    # auto's rule (carv.autotune): least Var C in the budget; in the linear model Var C does not depend on R, and
    # of equal Var C the first found, the fewest renders, is kept
    assert summary["auto"]["R"] == 1
    baseline = [r for r in summary["table"] if r["setting"] == BASELINE.name and r["K"] == 1]
    assert baseline[0]["R"] == 4 and baseline[0]["ecm"] == pytest.approx(1.0)
    for row in summary["table"]:
        assert row["step_seconds"] <= 4 * (a + b) + 1e-9
    assert summary["ecm_share_from_is_and_stratification"] > 0.0


def test_reuse_only_ecm_approaches_the_reuse_limit():
    a, b = 16.0, 1.0
    model = planted_model(a, b, {p: 16.0 for p in ("uniform", "sds", "gaussian", "adaptive")})
    summary = summarise(model, budget=64 * (a + b), baseline_renders=64, k_values=tuple(range(1, 33)))
    limit = carv.reuse_limit(carv.CostModel(a, b), *model.components(BASELINE, 1))
    assert summary["reuse_only"]["ecm"] <= limit + 1e-9
    assert summary["reuse_only"]["ecm"] == pytest.approx(limit, rel=0.05)


def test_stratified_settings_use_their_iid_components_at_k_1():
    model = planted_model(4.0, 1.0, {p: 3.0 for p in ("uniform", "sds", "gaussian", "adaptive")})
    strat, iid = Setting("sds", True), Setting("sds", False)
    assert model.components(strat, 1) == model.components(iid, 1)
    assert model.components(strat, 4) != model.components(iid, 4)


def test_sigma_b2_is_pooled_over_settings_and_sigma_w2_is_each_settings_own():
    model = planted_model(4.0, 1.0, {"uniform": 8.0, "sds": 2.0, "gaussian": 3.0, "adaptive": 4.0})
    pooled = sum(c.sigma_b2 for c in model.fitted.values()) / len(model.fitted)
    for setting, components in model.fitted.items():
        assert model.components(setting, 2) == (pooled, components.sigma_w2)
