"""The threestudio systems' auto mixin picks the known (R, K) of a planted probe (a = 16, b = 1, sigma_b^2 = 1,
sigma_w^2 = 4: K* = sqrt(a sigma_w^2 / (b sigma_b^2)) = 8), sets the training dataset's batch size, runs R and K
together from two steps after the probe (Lightning's prefetch), and logs the probe's values on probe steps only."""

import dataclasses
import importlib.util
import math
import warnings
from types import SimpleNamespace

import torch

import carv
from carv.autotune import AutoKOptions, ProbeResult
from carv.cost_curve import TeacherCostCurve, doubling_ladder
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
        options = dataclasses.asdict(AutoKOptions(auto_every_n_steps=every, auto_k_initial=2, auto_probe_size=4))
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


class DatasetStandIn:
    """threestudio's RandomCameraIterableDataset as far as batch sizes go: update_step resets batch_size to the
    configured one, collate draws batch_size cameras."""

    def __init__(self, batch_size: int):
        self.configured = self.batch_size = batch_size

    def update_step(self):
        self.batch_size = self.configured

    def collate(self, batch=None):
        return {"elevation": torch.zeros(self.batch_size), "c2w": torch.eye(4).repeat(self.batch_size, 1, 1)}


def train(system, steps: int, batch_size: int = 1) -> list[int]:
    """Lightning's loop with its one-batch prefetch: a step's batch was collated as the previous step began;
    returns the R of every step's batch."""
    system.dataset = DatasetStandIn(batch_size)
    system.on_fit_start()
    fetched, renders = [system.dataset.collate()], []
    for step in range(steps):
        batch = fetched.pop(0)
        fetched.append(system.dataset.collate())  # the batch of step + 1, before step begins
        system.true_global_step = system.global_step = step
        system.dataset.update_step()  # BaseSystem.on_train_batch_start
        system.on_train_batch_start(batch, step)
        system.on_train_batch_end(None, batch, step)  # no teacher timed: the probe's costs stay in force
        renders.append(batch["elevation"].shape[0])
    return renders


def test_the_threestudio_auto_picks_the_planted_k_star_two_steps_after_its_probe():
    planted = ProbeResult(
        carv.variance_components(planted_grid(4000, 4, 6, 1.0, 4.0, seed=3)),
        16.0,
        1.0,
        TeacherCostCurve.linear(1.0, doubling_ladder(64)),
    )

    class System(auto_k_module().AutoKMixin, SystemStandIn):
        def carv_variance_probe(self, renders, draws, step, curve_draws):
            self.probes.append((step, curve_draws))
            return planted

    system = System(every=2)
    assert train(system, 4) == [1, 1, 1, 1]  # linear curve: every R ties at K = 8, and R = 1 comes first
    assert system.probes == [(0, 64), (2, 0)]
    assert [k for _, k in system.logged["train/auto_k"]] == [2.0, 2.0, 8.0, 8.0]  # K with the R of step 0 + 2 on
    assert [step for step, _ in system.logged["train/carv_k_star"]] == [0, 2]
    assert [k for _, k in system.logged["train/carv_k"]] == [8.0, 8.0]
    assert [k for _, k in system.logged["train/carv_applies_from"]] == [2.0, 4.0]


def test_the_chosen_r_reaches_the_batches_of_the_steps_it_was_planned_for():
    """A flat-then-linear curve (c = 10 up to 8 draws, a = 1, sigma_w^2 = 4 sigma_b^2): (R, K) = (4, 2), planned at
    step 0 for step 2 on; the batch of step 1 was already collated, that of step 2 has 4 cameras."""
    knee = TeacherCostCurve(doubling_ladder(64), tuple(10.0 + max(n - 8, 0) for n in doubling_ladder(64)))
    planted = ProbeResult(carv.VarianceComponents(1.0, 4.0, math.nan, math.nan, 4, 4), 1.0, 10.0, knee)

    class System(auto_k_module().AutoKMixin, SystemStandIn):
        def carv_variance_probe(self, renders, draws, step, curve_draws):
            return planted

    system = System(every=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a batch of another R than planned warns
        assert train(system, 5) == [1, 1, 4, 4, 4]
    assert [k for _, k in system.logged["train/auto_k"]] == [2.0, 2.0, 2.0, 2.0, 2.0]
    assert [r for _, r in system.logged["train/auto_renders"]] == [1.0, 1.0, 4.0, 4.0, 4.0]
    assert system.dataset.batch_size == 4


def test_a_batch_size_whose_cameras_are_not_rotations_is_never_chosen():
    """The planted problem of test_the_chosen_r_reaches...: R = 3 wins at sigma_w^2 = 10 sigma_b^2; with a dataset
    whose batches of 3 are not rotations (threestudio 0.2.3's torch.cross), the controller excludes R = 3."""
    knee = TeacherCostCurve(doubling_ladder(64), tuple(10.0 + max(n - 8, 0) for n in doubling_ladder(64)))
    planted = ProbeResult(carv.VarianceComponents(1.0, 10.0, math.nan, math.nan, 4, 4), 1.0, 10.0, knee)

    class BrokenAtThree(DatasetStandIn):
        def collate(self, batch=None):
            collated = super().collate(batch)
            if self.batch_size == 3:
                collated["c2w"][:, 0, :3] = 1.0  # a row that is no unit vector
            return collated

    class System(auto_k_module().AutoKMixin, SystemStandIn):
        def carv_variance_probe(self, renders, draws, step, curve_draws):
            return planted

    chosen = {}
    for name, dataset in (("any", DatasetStandIn), ("broken", BrokenAtThree)):
        system = System(every=3)
        system.dataset = dataset(1)
        system.on_fit_start()
        system.on_train_batch_start(system.dataset.collate(), 0)
        chosen[name] = system.carv_auto.renders_ahead
    assert chosen == {"any": 3, "broken": 2}  # the next best pair of the planted model
