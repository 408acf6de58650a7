"""The direct check of a threestudio run's per-step gradient estimator at a checkpoint (scripts/variance_threestudio.py).

For each configuration (R, K, timestep proposal, stratified): N whole-step gradients, each what one training step of
the run would back-propagate, through the run's own system (geometry, material, background, renderer, at the
checkpoint's parameters and step-dependent state), its training camera distribution (data's train dataset, batch
size R) and the carv guidance of the run's config at that K and proposal, built the way DreamFusion.on_fit_start
builds it (the guidance and prompt processor are not in checkpoints). One repetition is the run's training_step
without its regularisers: render, guidance, d(lambda_sds * loss_sds)/d(trainable parameters), one flat gradient.
The regularisers (lambda_sparsity, lambda_opaque, lambda_orient) carry no (t, eps) and are left out, as in the CPU
pipeline's check (carv.pipeline.probe.Probe.step_gradient). Each repetition draws everything threestudio draws in a
step (cameras, ray jitter, encoder sample, t and eps) from the global generators (torch's, Python's, NumPy's), seeded
for it and restored after, so a repetition is a training step's exact draws; the guidance weights each t by p/q of
the proposal that drew it. The statistics are carv's: carv.stratified_variance.repeated_variance and
carv.stratified_variance.measured_ecm_at_costs, at the median seconds of each configuration's repetitions.
"""

from __future__ import annotations

import contextlib
import random
import statistics
from dataclasses import dataclass

import numpy as np
import threestudio
import torch
from omegaconf import OmegaConf
from pytorch_lightning.utilities import move_data_to_device
from threestudio.utils.base import update_if_possible
from threestudio.utils.misc import get_device

from carv.autotune import AutoKController
from carv.probe import flat_gradient
from carv.stratified_variance import measured_ecm_at_costs, repeated_variance
from carv.timesteps import PROPOSALS
from carv.timing import PhaseClock, synchronize, training_time

from .auto_k import auto_k_options, cameras_orthonormal
from .guidance import CarvGuidance


@dataclass(frozen=True)
class Configuration:
    """One estimator of a step: R renders, K (t, eps) draws each, the timestep proposal, per-render stratification."""

    renders: int
    k: int
    proposal: str
    stratified: bool

    def __post_init__(self):
        if self.renders < 1 or self.k < 1:
            raise ValueError(f"a configuration needs R >= 1 and K >= 1, got R={self.renders}, K={self.k}")
        if self.proposal not in PROPOSALS:
            raise ValueError(f"unknown timestep proposal {self.proposal!r}; valid: {', '.join(PROPOSALS)}")

    @property
    def name(self) -> str:
        return f"R{self.renders} K{self.k} {self.proposal}{'+strat' if self.stratified else ''}"

    def as_dict(self) -> dict:
        return {"R": self.renders, "K": self.k, "proposal": self.proposal, "stratified": self.stratified}


BASELINE = Configuration(4, 1, "uniform", False)
"""The equal-cost baseline: threestudio's step with R = 4 (K = 1, uniform t, IID)."""


def run_configuration(cfg) -> Configuration:
    """The configuration a run trained with (parsed config: data.batch_size, the guidance's K, proposal, strata)."""
    renders, guidance = cfg.data.batch_size, cfg.system.guidance
    k = guidance.get("noise_samples_per_render", 1)
    if not isinstance(renders, int) or not isinstance(k, int):
        raise ValueError(
            f"the run's data.batch_size ({renders}) and noise_samples_per_render ({k}) must be numbers "
            "(a schedule or auto: give its configurations with --configuration)"
        )
    return Configuration(
        renders, k, guidance.get("timestep_proposal", "uniform"), guidance.get("timestep_stratified", False)
    )


def default_configurations(cfg) -> dict[str, Configuration]:
    """The run's own configuration, the baseline, and reuse only (the run's R and K, uniform t, IID), by role."""
    own = run_configuration(cfg)
    return {"run": own, "baseline": BASELINE, "reuse_only": Configuration(own.renders, own.k, "uniform", False)}


def load_checkpoint(path) -> tuple[dict, int, int]:
    """(state_dict, epoch, global_step) of a Lightning checkpoint."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return checkpoint["state_dict"], checkpoint["epoch"], checkpoint["global_step"]


class DirectCheck:
    """A run's system at one checkpoint (None: untrained, step 0) with its training cameras and prompt processor."""

    def __init__(self, cfg, checkpoint=None):
        self.cfg = cfg
        self.system = threestudio.find(cfg.system_type)(cfg.system)
        self.epoch, self.step = 0, 0
        if checkpoint is not None:
            state, self.epoch, self.step = load_checkpoint(checkpoint)
            self.system.load_state_dict(state)
        self.system.set_resume_status(self.epoch, self.step)  # what launch.py does for --validate / --test
        self.system.to(get_device()).train()
        self.system.phase_clock = PhaseClock()  # the carv systems time their render phase (made in on_fit_start)
        self.system.do_update_step(self.epoch, self.step)  # step-dependent state (progressive encodings, ...)
        datamodule = threestudio.find(cfg.data_type)(cfg.data)
        datamodule.setup("fit")
        self.dataset = self.system.dataset = datamodule.train_dataset
        update_if_possible(self.dataset, self.epoch, self.step)
        self.system.prompt_processor = threestudio.find(cfg.system.prompt_processor_type)(cfg.system.prompt_processor)
        self.prompt_utils = self.system.prompt_processor()
        self.parameters = [p for p in self.system.parameters() if p.requires_grad]
        self.guidances: dict[Configuration, CarvGuidance] = {}
        self.skewed_batches: dict[int, int] = {}  # by R: batches whose cameras are not orthonormal

    def guidance(self, configuration: Configuration) -> CarvGuidance:
        """The run's guidance at this proposal and stratification (one per configuration: adaptive state is its own),
        at the checkpoint's schedules."""
        if configuration not in self.guidances:
            run = self.cfg.system.guidance
            same = (configuration.proposal, configuration.stratified) == (
                run.get("timestep_proposal", "uniform"),
                run.get("timestep_stratified", False),
            )
            strata = run.get("timestep_strata", 0) if same else 0
            options = {
                "timestep_proposal": configuration.proposal,
                "timestep_stratified": configuration.stratified,
                "timestep_strata": strata,
            }
            guidance = threestudio.find(self.cfg.system.guidance_type)(OmegaConf.merge(run, options))
            if not isinstance(guidance, CarvGuidance):
                raise ValueError(f"the direct check needs a carv guidance, the run has {self.cfg.system.guidance_type}")
            guidance.do_update_step(self.epoch, self.step)
            self.guidances[configuration] = guidance
        return self.guidances[configuration]

    def batch(self, renders: int) -> dict:
        """A fresh training batch of R cameras (the train dataset's collate, as Lightning's loader calls it)."""
        self.dataset.batch_size = renders
        batch = self.dataset.collate(None)
        if not cameras_orthonormal(batch):
            self.skewed_batches[renders] = self.skewed_batches.get(renders, 0) + 1
        return move_data_to_device(batch, self.system.device)

    def sds_loss(self, configuration: Configuration, batch: dict, draw_seed: int | None = None) -> torch.Tensor:
        """lambda_sds * loss_sds of one training step on this batch (the run's training_step, regularisers aside);
        draw_seed: the guidance's draws (encoder sample, t, eps) from generators seeded with it, the render's not."""
        guidance = self.guidance(configuration)
        out = self.system(batch)
        with contextlib.nullcontext() if draw_seed is None else self.seeded(draw_seed):
            guidance_out = guidance(
                out["comp_rgb"], self.prompt_utils, **batch, rgb_as_latents=False, carv_k=configuration.k
            )
        return guidance_out["loss_sds"] * self.system.C(self.cfg.system.loss.lambda_sds)

    def step_gradient(
        self, configuration: Configuration, seed: int, draw_seed: int | None = None
    ) -> tuple[torch.Tensor, float]:
        """(one whole-step gradient [D], its seconds: render + guidance + backward), every draw from the global
        generators seeded with `seed` (restored afterwards). With draw_seed the guidance draws from its own seed:
        one seed and many draw seeds are repetitions at one fixed render (cameras, ray jitter)."""
        with self.seeded(seed):
            batch = self.batch(configuration.renders)
            synchronize()
            started = training_time()
            gradient = flat_gradient(self.sds_loss(configuration, batch, draw_seed), self.parameters, None)
            synchronize()
            return gradient.detach(), training_time() - started

    def warm_up(self, configuration: Configuration, seeds: list[int]) -> None:
        """Feed an adaptive proposal with draws on batches of their own (none enters a repetition); no-op otherwise."""
        if configuration.proposal != "adaptive":
            return
        for seed in seeds:
            with self.seeded(seed), torch.no_grad():
                self.sds_loss(configuration, self.batch(configuration.renders))

    @contextlib.contextmanager
    def seeded(self, seed: int):
        """Every generator a training step draws from (torch's, also CUDA's; Python's, which threestudio's camera
        batches use for their elevation rule; NumPy's) seeded with `seed` (modulo 2^32 for NumPy), restored after."""
        devices = [self.system.device.index or 0] if self.system.device.type == "cuda" else []
        python, numpy = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                yield
            finally:
                random.setstate(python)
                np.random.set_state(numpy)

    def auto_recommendation(self, seed: int) -> tuple[Configuration, dict]:
        """What `noise_samples_per_render: auto` would choose here (one probe of AutoKController at this step, the
        run's proposal and auto options), and the probe's record (predicted ECM, components, costs)."""
        if not hasattr(self.system, "carv_variance_probe"):
            raise ValueError(f"auto's probe needs a carv system, the run has {self.cfg.system_type}")
        own = run_configuration(self.cfg)
        self.system.guidance = self.guidance(own)
        options = auto_k_options(self.system.guidance.cfg)
        controller = AutoKController(options, self.system.guidance.cfg.timestep_strata, own.renders)
        self.dataset.batch_size = own.renders
        with self.seeded(seed):
            # a probe step of the controller (step 0), probing this checkpoint's parameters
            (renders, k), record = controller.configuration_for_step(0, self.system.carv_variance_probe)
        return Configuration(renders, k, own.proposal, own.stratified), record


def round_seeds(seed: int, configurations: int, repeats: int) -> torch.Tensor:
    """[repeats, configurations] seeds for the repetitions, and as many again for warm-ups, from one generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2**62, (2, repeats, configurations), generator=generator)


def measure(check: DirectCheck, configurations: dict[str, Configuration], repeats: int, seed: int, progress=None):
    """{role: {R, K, proposal, stratified, measured, measured_se, seconds, cameras_orthonormal, ecm, ecm_se}}:
    configurations run round by round (one repetition of each per round, so a change of load falls on all alike), ECM
    against the baseline role. cameras_orthonormal is False where a batch of that R had skewed cameras (see
    cameras_orthonormal): that configuration estimates another gradient and its ECM compares unlike things."""
    if repeats < 3:
        raise ValueError(f"need --repeats >= 3, got {repeats}")
    if "baseline" not in configurations:
        raise ValueError("the configurations need a baseline")
    roles = list(configurations)
    repetitions, warm = round_seeds(seed, len(roles), repeats).tolist()
    for column, role in enumerate(roles):
        check.warm_up(configurations[role], [row[column] for row in warm])
    gradients = {role: [] for role in roles}
    seconds = {role: [] for role in roles}
    for row in repetitions:
        for column, role in enumerate(roles):
            gradient, spent = check.step_gradient(configurations[role], row[column])
            gradients[role].append(gradient.cpu())
            seconds[role].append(spent)
            if progress is not None:
                progress.update(1)
    results = {}
    for role in roles:
        measured, measured_se = repeated_variance(torch.stack(gradients[role]))
        results[role] = {
            **configurations[role].as_dict(),
            "measured": measured,
            "measured_se": measured_se,
            "seconds": statistics.median(seconds[role]),
            "cameras_orthonormal": check.skewed_batches.get(configurations[role].renders, 0) == 0,
        }
    base = results["baseline"]
    for role, result in results.items():
        ecm = {"ecm": 1.0, "se": 0.0}  # the baseline against itself
        if role != "baseline":
            ecm = measured_ecm_at_costs(result, base, result["seconds"], base["seconds"])
        result.update(ecm=ecm["ecm"], ecm_se=ecm["se"])
    return results
