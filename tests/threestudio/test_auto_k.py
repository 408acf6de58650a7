"""system.carv_auto_k: K re-chosen from variance probes during a shrunken CPU run of carv-dreamfusion-system."""

import math

from .test_training import fit_and_test_on_cpu, logged_rows, shrunken_toy_config


def test_auto_k_probes_and_sets_k_within_its_bounds(threestudio, in_tmp_dir, tiny_teachers):
    cfg = shrunken_toy_config(threestudio, tiny_teachers["sd"], steps=4)
    cfg.system.carv_auto_k = True
    cfg.system.carv_auto_every_n_steps = 2
    cfg.system.carv_auto_k_max = 12
    cfg.system.carv_probe_renders = 3
    cfg.system.carv_probe_draws = 2
    fit_and_test_on_cpu(threestudio, cfg)
    rows = logged_rows(in_tmp_dir / cfg.trial_dir)
    ks = [float(row["train/auto_k"]) for row in rows if row.get("train/auto_k")]
    assert len(ks) == 4 and all(1 <= k <= 12 and k == int(k) for k in ks)
    probe_names = ["sigma_b2", "sigma_w2", "cost_a", "cost_b", "k_star", "ecm_reuse_vs_baseline"]
    probes = [row for row in rows if row.get("train/carv_sigma_w2")]
    assert {row["step"] for row in probes} >= {"0", "2"}  # the probe steps
    for row in probes:
        values = {name: float(row[f"train/carv_{name}"]) for name in probe_names}
        assert all(math.isfinite(v) for v in values.values()), values
        assert values["sigma_w2"] >= 0 and values["cost_b"] > 0 and 1 <= values["k_star"] <= 12


def test_auto_k_is_off_by_default(threestudio, in_tmp_dir, tiny_teachers):
    from threestudio.utils.config import parse_structured

    cfg = shrunken_toy_config(threestudio, tiny_teachers["sd"], steps=1)
    for name in ("carv-dreamfusion-system", "carv-magic3d-system"):
        assert parse_structured(threestudio.find(name).Config, cfg.system).carv_auto_k is False
