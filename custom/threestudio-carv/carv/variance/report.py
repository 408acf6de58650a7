"""`carv variance RUN_DIR_OR_CONFIG`: measure a, b and the variance components at checkpoints, write the report.

Per checkpoint (folder <label>/): components.csv, ecm_table.csv, draws.csv (t and per-draw norms),
ecm_frontier.png, gradient_norm_vs_t.png; report.json over all checkpoints and cost_vs_draws.png (each
checkpoint's measured teacher curve c(n) beside the linear model's n b). Timings are wall-clock on
whatever machine runs it (a shared CPU inflates and jitters them; a, b and c(n) come from the same run).
The recommendation uses the measured cost C(R, K) = R a + c(R K); the linear model's figures stand beside it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from ..accounting import CostModel
from ..cost_curve import MeasuredCostModel, TeacherCostCurve, memory_bound
from ..guidance_cost import guidance_cost_curve
from ..pipeline.config import load_config, parse_overrides, scheduled
from ..pipeline.errors import UserError
from ..pipeline.probe import Probe
from ..pipeline.prompts import ViewDependentPrompts, prompt_encoder
from ..pipeline.runner import build_guidance, new_folder, prepare_device
from ..pipeline.system import TextTo3DSystem
from ..stratified_variance import between_render_part, repeated_variance
from ..timing import PhaseClock
from ..variance_model import BASELINE, SETTINGS, Setting, VarianceModel, fit, summarise_measured
from .files import measured_ecm, write_checkpoint_files
from .plots import plot_cost_curves

Z99 = 2.5758  # two-sided 99% normal quantile


@dataclass
class ReportOptions:
    renders: int = 16  # R of the probe grid
    draws: int = 8  # K of the probe grid (even: stratified components pair strata)
    repeats: int = 64  # whole-step repetitions for the direct check of each validated configuration
    budget: float = 4.0  # per-step budget in units of one baseline render a + b (4 = threestudio's R = 4, K = 1)
    baseline_renders: int = 4  # R of the equal-cost baseline (K = 1, uniform t, IID)
    warmup_batches: int = 2  # batches of draws that train the adaptive proposal before its grid
    seed: int = 0
    curve_draws: int = 0  # top of the teacher curve's ladder 1, 2, 4, ... (0: the ECM table's largest R K)
    curve_repeats: int = 3  # timed calls per ladder step (median)
    camera_repeats: int = 64  # steps per camera-rule check of the baseline (iid and stratified azimuths; 0: none)

    def check(self) -> None:
        if self.renders < 3 or self.draws < 2 or self.draws % 2:
            raise UserError(f"need --renders >= 3 and an even --draws >= 2, got {self.renders} and {self.draws}")
        if self.repeats < 3 or self.budget < 1 or self.baseline_renders < 1:
            raise UserError("need --repeats >= 3, --budget >= 1 and --baseline-renders >= 1")
        if self.curve_draws < 0 or self.curve_repeats < 1:
            raise UserError(
                f"need --curve-draws >= 1 (or 0: the default) and --curve-repeats >= 1, got "
                f"{self.curve_draws} and {self.curve_repeats}"
            )
        if self.camera_repeats and self.camera_repeats < 3:
            raise UserError(f"need --camera-repeats 0 (off) or >= 3, got {self.camera_repeats}")


def checkpoints_of(run_dir: Path, which: str) -> list[Path]:
    """ckpts/last.ckpt ("last"), the earliest and the last ("ends"), or every checkpoint in step order ("all")."""
    found = sorted(run_dir.glob("ckpts/*.ckpt"), key=lambda p: torch.load(p, map_location="cpu")["global_step"])
    last = [p for p in found if p.name == "last.ckpt"]
    if which == "last":
        found = last
    elif which == "ends":  # the earliest checkpoint and the last one
        found = found[:1] + [p for p in last if p != found[0]] if found else []
    if not found:
        raise UserError(f"{run_dir} has no checkpoint in ckpts/")
    return found


def resolve_target(target: str, overrides: list[str], prompt: str | None, which: str):
    """(config, [(label, state_dict or None, step)], output parent) of a run folder or a config."""
    run_dir = Path(target)
    if (run_dir / "configs" / "parsed.yaml").is_file():
        config = OmegaConf.merge(OmegaConf.load(run_dir / "configs" / "parsed.yaml"), parse_overrides(overrides))
        states = []
        for path in checkpoints_of(run_dir, which):
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
            states.append(
                (f"{path.stem}-step{checkpoint['global_step']}", checkpoint["state_dict"], checkpoint["global_step"])
            )
        return config, states, run_dir
    if prompt is None:
        raise UserError(
            f"{target} {'is not a run folder' if run_dir.exists() else 'does not exist'}; to probe a config's initial scene give --prompt TEXT"
        )
    config = load_config(target, overrides, prompt=prompt)
    return config, [("init-step0", None, 0)], Path(config.exp_root_dir) / "variance"


def probe_at(config, state, step: int, guidance, prompts, device) -> Probe:
    system = TextTo3DSystem(config)
    if state is not None:
        system.load_state_dict(state)
    system.to(device)
    g = config.system.guidance
    guidance.update_schedule(scheduled(g.min_step_percent, step), scheduled(g.max_step_percent, step), None)
    return Probe(system, guidance, prompts, step)


def measure_grids(probe: Probe, options: ReportOptions, generator, progress) -> tuple[dict, dict]:
    """Fitted components of every setting and the pooled per-draw (t, latent, parameter) squared norms.

    The grids' renders have independent azimuths, as the model assumes: R renders one per azimuth stratum (the
    training default, threestudio's batch_uniform_azimuth) would overstate sigma_b^2 by up to R / (R - 1)."""
    fitted, pooled = {}, {"t": [], "latent": [], "parameter": []}
    for setting in SETTINGS:
        progress.set_description(f"grid {setting.name}")
        probe.warm_up(setting, options.renders, options.draws, options.warmup_batches, generator)
        grid = probe.grid(setting, options.renders, options.draws, generator, progress, camera_rule="iid")
        fitted[setting] = fit(grid, setting.stratified)
        for key, values in (("t", grid.t), ("latent", grid.latent_sq_norm), ("parameter", grid.parameter_sq_norm)):
            pooled[key].append(values.flatten())
    return fitted, {k: torch.cat(v) for k, v in pooled.items()}


def validate(
    probe: Probe,
    model: VarianceModel,
    setting: Setting,
    renders: int,
    k: int,
    options,
    generator,
    camera_rule: str = "training",
    repeats: int | None = None,
) -> dict:
    """Variance of the whole per-step estimator by repetition against the model's prediction.

    camera_rule: how each step draws its azimuths (carv.pipeline.probe.CAMERA_RULES; the model assumes "iid")."""
    repeats = repeats or options.repeats
    steps = torch.stack(
        [probe.step_gradient(setting, renders, k, generator, camera_rule=camera_rule) for _ in range(repeats)]
    )
    measured, measured_se = repeated_variance(steps)
    predicted, predicted_se = model.variance(setting, renders, k), model.variance_se(setting, renders, k)
    z = (measured - predicted) / (measured_se**2 + predicted_se**2) ** 0.5
    return {
        "setting": setting.name,
        "R": renders,
        "K": k,
        "cameras": camera_rule,
        "repeats": repeats,
        "measured": measured,
        "measured_se": measured_se,
        "predicted": predicted,
        "predicted_se": predicted_se,
        "z": z,
        "agree_99": abs(z) <= Z99,
    }


CAMERA_COMPARISON = ("iid", "stratified")


def camera_check(probe: Probe, model: VarianceModel, baseline_check: dict, options: ReportOptions, generator) -> dict:
    """What stratified azimuths buy at the baseline's R (K = 1, uniform t): the step's variance by repetition with
    independent azimuths, with the run's own rule (the baseline's direct check) and with R strata at one uniform
    offset (data.carv_azimuth_sampling: stratified; golden draws each step alike and differs only across steps);
    the between-render part of each (less the model's within part sigma_w^2 / R) and the ECM of each against
    independent azimuths (equal cost: the ratio of variances). The iid check is also the model's check with the
    cameras it assumes."""
    renders = baseline_check["R"]
    checks = {
        rule: validate(probe, model, BASELINE, renders, 1, options, generator, rule, options.camera_repeats)
        for rule in CAMERA_COMPARISON
    }
    checks["training"] = baseline_check
    within = model.source(BASELINE, 1)
    rules = {}
    for rule, check in checks.items():
        between, between_se = between_render_part(
            check["measured"], check["measured_se"], max(within.sigma_w2, 0.0), within.sigma_w2_se, renders, 1
        )
        rules[rule] = {
            **{key: check[key] for key in ("measured", "measured_se", "predicted", "predicted_se", "z", "repeats")},
            "between": between,
            "between_se": between_se,
            "ecm_vs_iid": measured_ecm(check, checks["iid"], model.costs),
        }
    data = probe.system.config.data
    training = data.get("carv_azimuth_sampling", "threestudio")
    if training == "threestudio":
        training += f" (batch_uniform_azimuth={bool(data.batch_uniform_azimuth)})"
    gain = measured_ecm(checks["stratified"], checks["training"], model.costs)  # over the run's own cameras
    return {
        "setting": BASELINE.name,
        "R": renders,
        "K": 1,
        "training_rule": training,
        "rules": rules,
        "ecm_stratified_vs_training": gain,
    }


def report_checkpoint(probe: Probe, label: str, options: ReportOptions, folder: Path, progress) -> dict:
    generator = torch.Generator().manual_seed(options.seed)
    fitted, pooled = measure_grids(probe, options, generator, progress)
    progress.set_description("teacher curve c(n)")
    linear = CostModel(probe.meter.a, probe.meter.b)
    model, summary = summarise_measured(
        fitted,
        lambda draws: measured_costs(linear.a, teacher_curve(probe, options, draws), draws, device_of_system(probe)),
        linear,
        options.budget,
        options.baseline_renders,
        options.curve_draws,
    )
    costs = model.costs
    recommended = summary["recommended"]
    progress.set_description("direct check")
    baseline = {"setting": BASELINE.name, "R": options.baseline_renders, "K": 1}
    checks = []
    for row in (recommended, baseline, summary["reuse_only"]):  # the check of the baseline is the reference
        checks.append(
            validate(probe, model, setting_named(fitted, row["setting"]), row["R"], row["K"], options, generator)
        )
        progress.update(options.repeats)
    summary["measured_ecm"] = measured_ecm(checks[0], checks[1], costs)
    summary["measured_ecm_reuse_only"] = measured_ecm(checks[2], checks[1], costs)
    summary["measured_share_from_is_and_stratification"] = (
        summary["measured_ecm"]["ecm"] / summary["measured_ecm_reuse_only"]["ecm"] - 1.0
    )
    if options.camera_repeats:
        progress.set_description("camera check")
        summary["camera_stratification"] = camera_check(probe, model, checks[1], options, generator)
        progress.update(len(CAMERA_COMPARISON) * options.camera_repeats)
    extra = write_checkpoint_files(folder, summary, pooled, model, probe, label)
    return {
        "checkpoint": label,
        "step": probe.step,
        **summary,
        "validation": checks,
        **extra,
        "meter": asdict(probe.meter),
    }


def teacher_curve(probe: Probe, options: ReportOptions, draws: int) -> TeacherCostCurve:
    """c(n) of the checkpoint's own guidance (teacher, proposal, UNet batching) on one fresh render, on the ladder
    1, 2, 4, ... draws; the render has its own generator, so the report's other draws are unchanged."""
    latents, text = probe.render(1, torch.Generator().manual_seed(options.seed + 1), grad=False)
    return guidance_cost_curve(probe.guidance, text, latents[0], draws, options.curve_repeats)


def device_of_system(probe: Probe) -> torch.device:
    return next(probe.system.parameters()).device


def measured_costs(a: float, curve: TeacherCostCurve, requested: int, device: torch.device) -> MeasuredCostModel:
    """R a + c(R K), bounded on CUDA by the device's memory (cost_curve.memory_bound; beyond the ladder the peak
    memory is extrapolated)."""
    total = float(torch.cuda.get_device_properties(device).total_memory) if device.type == "cuda" else None
    return MeasuredCostModel(a, curve, memory_limit=memory_bound(curve, requested, total))


def setting_named(fitted: dict, name: str) -> Setting:
    return next(s for s in fitted if s.name == name)


def variance_report(
    target: str,
    options: ReportOptions | None = None,
    *,
    which: str = "last",
    prompt=None,
    overrides=(),
    out: str | None = None,
    progress: bool = True,
) -> dict:
    """Run the report on a run folder's checkpoints (or a config's initial scene) and write its files."""
    options = options or ReportOptions()
    options.check()
    started = time.perf_counter()
    config, states, parent = resolve_target(target, list(overrides), prompt, which)
    folder = Path(out) if out else new_folder(parent, "variance")
    folder.mkdir(parents=True, exist_ok=True)
    device = prepare_device(config)
    guidance, _ = build_guidance(config, device, PhaseClock())
    p = config.system.prompt_processor
    encoder = prompt_encoder(config.system.guidance.pretrained_model_name_or_path, p.prompt, device)
    prompts = ViewDependentPrompts(encoder, p.prompt, p.negative_prompt, p.view_dependent_prompting).to(device)
    per_checkpoint = len(SETTINGS) * options.renders * options.draws + 3 * options.repeats
    per_checkpoint += len(CAMERA_COMPARISON) * options.camera_repeats
    results = []
    with tqdm(total=per_checkpoint * len(states), disable=not progress, unit="draw") as bar:
        for label, state, step in states:
            probe = probe_at(config, state, step, guidance, prompts, device)
            results.append(report_checkpoint(probe, label, options, folder / label, bar))
    report = {
        "target": str(target),
        "prompt": p.prompt,
        "options": asdict(options),
        "checkpoints": results,
        "seconds": time.perf_counter() - started,
        "folder": str(folder),
    }
    report["cost_plot"] = str(plot_cost_curves(results, folder / "cost_vs_draws.png", p.prompt))
    (folder / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report
