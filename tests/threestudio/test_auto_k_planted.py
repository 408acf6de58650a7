"""The threestudio systems' auto-K mixin picks the known K* of a planted probe (a = 16, b = 1, sigma_b^2 = 1,
sigma_w^2 = 4: K* = sqrt(a sigma_w^2 / (b sigma_b^2)) = 8), and logs the probe's values on probe steps only."""

import importlib.util
from types import SimpleNamespace

import torch

import carv
from carv.autotune import ProbeResult
from carv.timing import PhaseClock

from ..helpers import planted_grid
from .conftest import EXTENSION_DIR


def auto_k_module():
    """custom/threestudio-carv/auto_k.py by path (it imports carv and Lightning, not threestudio)."""
    spec = importlib.util.spec_from_file_location("carv_auto_k_under_test", EXTENSION_DIR / "auto_k.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SystemStandIn:
    """The hooks and attributes of a threestudio BaseSystem that the mixin calls."""

    def __init__(self, every: int):
        options = dict(auto_every_n_steps=every, auto_k_initial=2, auto_k_max=64, auto_probe_size=4)
        self.guidance = SimpleNamespace(
            cfg=SimpleNamespace(noise_samples_per_render="auto", timestep_strata=0, **options)
        )
        self.phase_clock, self.loggers, self.logged, self.probes = PhaseClock(), [self], {}, []
        self.true_global_step = self.global_step = 0

    def on_fit_start(self):
        pass

    def on_train_batch_start(self, batch, batch_idx, unused=0):
        pass

    def on_train_batch_end(self, outputs, batch, batch_idx):
        pass

    def log(self, name, value):
        self.logged.setdefault(name, []).append((self.global_step, value))

    def log_metrics(self, metrics, step):
        for name, value in metrics.items():
            self.logged.setdefault(name, []).append((step, value))


def test_the_threestudio_auto_k_picks_the_planted_k_star():
    planted = ProbeResult(carv.variance_components(planted_grid(4000, 4, 6, 1.0, 4.0, seed=3)), 16.0, 1.0)

    class System(auto_k_module().AutoKMixin, SystemStandIn):
        def carv_variance_probe(self, renders, draws, step):
            self.probes.append(step)
            return planted

    system = System(every=2)
    system.on_fit_start()
    batch = {"elevation": torch.zeros(1)}
    for step in range(4):
        system.true_global_step = system.global_step = step
        system.on_train_batch_start(batch, step)
        system.on_train_batch_end(None, batch, step)  # no teacher timed: the probe's costs stay in force
    assert system.probes == [0, 2]
    assert [k for _, k in system.logged["train/auto_k"]] == [8.0] * 4
    assert [step for step, _ in system.logged["train/carv_k_star"]] == [0, 2]
    assert [k for _, k in system.logged["train/carv_k_star"]] == [8.0, 8.0]
