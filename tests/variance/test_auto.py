"""`noise_samples_per_render: auto` in the CPU pipeline (the choice of K* itself: test_analysis, tests/carv)."""

import csv

import pytest

from carv.autotune import AutoKController, AutoKOptions, step_costs
from carv.pipeline.errors import UserError
from carv.pipeline.runner import text_to_3d

from ..helpers import assert_same_parameters, shrunken


def logged(run_dir, key: str) -> list[float]:
    rows = csv.DictReader(next(run_dir.glob("csv_logs/*/metrics.csv")).open())
    return [float(r[key]) for r in rows if r.get(key)]


def test_auto_sets_k_from_probes_within_its_bounds(toy_teacher, random_judge, tmp_path):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=3), "system.guidance.auto_every_n_steps=2"]
    result = text_to_3d(
        "a red mug", "cpu-carv-auto", [*overrides, "system.guidance.auto_k_initial=4", "system.guidance.auto_k_max=12"]
    )
    ks = logged(result.run_dir, "train/auto_k")
    assert len(ks) == 3 and all(1 <= k <= 12 and k == int(k) for k in ks)
    assert result.metrics["noise_samples_per_render"] == ks[-1]  # the K used, not the word "auto"
    assert [row["k"] for row in result.metrics["auto_k"]] == ks


def test_probe_draws_never_enter_a_step(toy_teacher, random_judge, tmp_path):
    """(R, K) pinned by auto's bounds to (1, 2), probing (and measuring the cost curve) every step: the same
    parameters as a fixed R = 1, K = 2 run."""
    common = [*shrunken(toy_teacher, random_judge, tmp_path, steps=2), "system.guidance.timestep_proposal=sds"]
    pinned = [
        "system.guidance.auto_k_initial=2",
        "system.guidance.auto_k_max=2",
        "system.guidance.auto_r_max=1",
        "system.guidance.auto_every_n_steps=1",
    ]
    auto = text_to_3d("a red mug", "cpu-carv-auto", [*common, *pinned])
    fixed = text_to_3d("a red mug", "cpu-carv-auto", [*common, "system.guidance.noise_samples_per_render=2"])
    assert logged(auto.run_dir, "train/auto_k") == [2.0, 2.0]
    assert_same_parameters(auto.run_dir / "ckpts/last.ckpt", fixed.run_dir / "ckpts/last.ckpt")


@pytest.mark.parametrize("value", ["0", "many"])
def test_bad_k_is_a_config_error(toy_teacher, random_judge, tmp_path, value):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path), f"system.guidance.noise_samples_per_render={value}"]
    with pytest.raises(UserError, match="noise_samples_per_render"):
        text_to_3d("a red mug", "cpu-carv", overrides)


def test_step_costs_per_render_and_per_teacher_evaluation():
    clock = {"render": 2.0, "encode": 1.0, "backward": 1.0, "teacher": 8.0, "optimizer": 5.0}
    assert step_costs(clock, renders=2, draws_per_render=4) == (2.0, 1.0)
    assert step_costs({"render": 1.0}, 1, 1) is None
    with pytest.raises(ValueError, match="auto_probe_size"):
        AutoKController(AutoKOptions(auto_probe_size=2))


def test_bad_auto_bounds_are_a_config_error(toy_teacher, random_judge, tmp_path):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path), "system.guidance.auto_k_max=2"]
    with pytest.raises(UserError, match="auto_k_initial <= auto_k_max"):
        text_to_3d("a red mug", "cpu-carv-auto", overrides)


def test_auto_with_strata_chooses_multiples_of_them_and_probes_with_its_own(toy_teacher, random_judge, tmp_path):
    """timestep_strata=4 with a probe of 6 draws per render crashed ("6 draws cannot be split evenly over 4 strata")."""
    overrides = [
        *shrunken(toy_teacher, random_judge, tmp_path, steps=2),
        "system.guidance.timestep_strata=4",
        "system.guidance.auto_probe_size=5",
        "system.guidance.auto_k_initial=4",
        "system.guidance.auto_k_max=8",
        "system.guidance.auto_every_n_steps=1",
    ]
    result = text_to_3d("a red mug", "cpu-carv-auto", overrides)
    ks = logged(result.run_dir, "train/auto_k")
    assert len(ks) == 2 and all(k in (4.0, 8.0) for k in ks)


def test_auto_strata_that_no_k_in_the_bounds_fits_are_a_config_error(toy_teacher, random_judge, tmp_path):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path), "system.guidance.timestep_strata=3"]
    with pytest.raises(UserError, match="multiples of 3"):
        text_to_3d("a red mug", "cpu-carv-auto", overrides)


def test_the_probe_leaves_the_training_guidance_unchanged(toy_teacher, random_judge, tmp_path):
    """The probe passes its K to each call: the training guidance's config is what it was, even if the probe fails."""
    import copy

    from carv.pipeline.config import load_config
    from carv.pipeline.probe import auto_k_probe
    from carv.pipeline.prompts import ViewDependentPrompts, prompt_encoder
    from carv.pipeline.runner import build_guidance
    from carv.pipeline.system import TextTo3DSystem

    config = load_config("cpu-carv-auto", shrunken(toy_teacher, random_judge, tmp_path), prompt="a red mug")
    system = TextTo3DSystem(config)
    guidance, _ = build_guidance(config, "cpu", system.clock)
    p = config.system.prompt_processor
    prompts = ViewDependentPrompts(prompt_encoder(str(toy_teacher), p.prompt, "cpu"), p.prompt, p.negative_prompt)
    system.attach(guidance, prompts)
    before = copy.deepcopy(guidance.config)
    result = auto_k_probe(system, 3, 6, step=0, curve_draws=4)
    assert result.components.draws_per_render == 6 and result.b > 0 and result.curve.draws == (1, 2, 4)
    assert guidance.config == before
    guidance.teacher.teacher.predict_noise = lambda *args: (_ for _ in ()).throw(RuntimeError("teacher down"))
    with pytest.raises(RuntimeError, match="teacher down"):
        auto_k_probe(system, 3, 4, step=1)
    assert guidance.config == before


def test_the_probe_draws_independent_cameras_whatever_the_training_rule(
    toy_teacher, random_judge, tmp_path, monkeypatch
):
    """The model's sigma_b^2 is one render's variance: a probe batch of stratified azimuths would overstate it."""
    import carv.pipeline.probe
    from carv.pipeline.config import load_config
    from carv.pipeline.probe import auto_k_probe
    from carv.pipeline.prompts import ViewDependentPrompts, prompt_encoder
    from carv.pipeline.runner import build_guidance
    from carv.pipeline.system import TextTo3DSystem

    config = load_config("cpu-carv-auto", shrunken(toy_teacher, random_judge, tmp_path), prompt="a red mug")
    assert config.data.batch_uniform_azimuth  # the training rule stratifies a batch's azimuths
    system = TextTo3DSystem(config)
    guidance, _ = build_guidance(config, "cpu", system.clock)
    p = config.system.prompt_processor
    system.attach(guidance, ViewDependentPrompts(prompt_encoder(str(toy_teacher), p.prompt, "cpu"), p.prompt))
    seen, train_batch = [], carv.pipeline.probe.train_batch
    monkeypatch.setattr(
        carv.pipeline.probe, "train_batch", lambda data, *a, **k: seen.append(data) or train_batch(data, *a, **k)
    )
    auto_k_probe(system, 3, 2, step=0)
    assert seen and all(not data.batch_uniform_azimuth and data.carv_azimuth_sampling == "threestudio" for data in seen)


def test_auto_in_the_pipeline_sets_the_k_star_of_a_planted_probe(toy_teacher, random_judge, tmp_path, monkeypatch):
    """The system's probe replaced by a planted problem (a = 16, b = 1, sigma_b^2 = 1, sigma_w^2 = 4): K* = 8."""
    import carv
    import carv.pipeline.probe
    from carv.autotune import ProbeResult
    from carv.cost_curve import TeacherCostCurve, doubling_ladder

    from ..helpers import planted_grid

    planted = ProbeResult(
        carv.variance_components(planted_grid(4000, 4, 6, 1.0, 4.0, seed=3)),
        16.0,
        1.0,
        TeacherCostCurve.linear(1.0, doubling_ladder(64)),
    )
    monkeypatch.setattr(carv.pipeline.probe, "auto_k_probe", lambda system, renders, draws, step, curve: planted)
    overrides = [
        *shrunken(toy_teacher, random_judge, tmp_path, steps=1),
        "system.guidance.auto_k_initial=2",
        "system.guidance.auto_every_n_steps=1",
    ]
    result = text_to_3d("a red mug", "cpu-carv-auto", overrides)
    assert logged(result.run_dir, "train/auto_k") == [8.0] and result.metrics["noise_samples_per_render"] == 8


def test_auto_changes_r_between_steps_and_logs_it(toy_teacher, random_judge, tmp_path, monkeypatch):
    """Planted probes (carv.autotune's unit tests hold the choice itself), in units large beside the real clocks:
    a = 1000 s and c(n) = 10^4 s up to the knee at 8 draws, 1000 s a draw beyond. At step 0, sigma_w^2 = 4 sigma_b^2
    gives (R, K) = (4, 2), R K at the knee; at step 2 (a averaged with the steps' clocks to about 250 s) a within-render
    variance of 10^4 gives R = 1, K = 8, the knee again (one more draw is over the budget). The steps render that
    many views, and the probes are logged."""
    import carv.pipeline.probe
    from carv.autotune import ProbeResult

    from ..carv.test_autotune import exact, knee_curve

    components = {0: exact(1.0, 4.0), 2: exact(1.0, 10_000.0)}
    seen = []

    def planted(system, renders, draws, step, curve_draws):
        seen.append((step, curve_draws))
        return ProbeResult(components[step], 1e3, 1e4, knee_curve(8, 1e4, 1e3) if curve_draws else None)

    monkeypatch.setattr(carv.pipeline.probe, "auto_k_probe", planted)
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=4), "system.guidance.auto_every_n_steps=2"]
    result = text_to_3d("a red mug", "cpu-carv-auto", [*overrides, "system.guidance.auto_k_initial=2"])
    assert seen == [(0, 64), (2, 0)]  # the curve is measured once, up to auto_max_draws_per_step
    renders = logged(result.run_dir, "train/auto_renders")
    ks = logged(result.run_dir, "train/auto_k")
    assert renders == [4.0, 4.0, 1.0, 1.0] and ks == [2.0, 2.0, 8.0, 8.0]
    assert logged(result.run_dir, "train/carv_renders") == [4.0, 1.0]
    assert logged(result.run_dir, "train/carv_k") == [2.0, 8.0]
    assert logged(result.run_dir, "train/carv_ecm_vs_baseline")[0] == pytest.approx(17.5 / 10.5)
    assert logged(result.run_dir, "train/carv_linear_renders")[0] == 4.0  # the linear model keeps the baseline
    assert (result.metrics["renders_per_step"], result.metrics["noise_samples_per_render"]) == (1, 8)
    assert [row["renders"] for row in result.metrics["auto_probes"]] == [4, 1]
