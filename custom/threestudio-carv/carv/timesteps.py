"""Timestep proposals and samplers: every draw returns (t, weight = p(t) / q(t)).

p is threestudio's timestep distribution: uniform on the integers
{min_step, ..., max_step}. q is the proposal that draws t (CARV sec. 2.2); each
proposal is a discrete pmf over that range, and sampling is an inverse CDF
applied to IID or stratified uniforms (CARV sec. 2.3), so the weight always
comes from the exact pmf that drew the timestep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .distributed import concatenated_across_ranks
from .uniforms import iid_uniforms, stratified_uniforms

SD_BETA_START = 0.00085
SD_BETA_END = 0.012
SD_NUM_TRAIN_TIMESTEPS = 1000
SD_BETA_SCHEDULE = "scaled_linear"
"""Stable Diffusion's training noise schedule: the one copy (the diffusers schedulers built here use it too)."""


def stable_diffusion_alphas_cumprod(
    num_train_timesteps: int = SD_NUM_TRAIN_TIMESTEPS,
    beta_start: float = SD_BETA_START,
    beta_end: float = SD_BETA_END,
) -> torch.Tensor:
    """abar_t of Stable Diffusion's "scaled_linear" beta schedule, float64 [T]."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


@dataclass(frozen=True)
class TimestepDraw:
    """Timesteps and their importance weights, drawn together so neither travels alone."""

    t: torch.Tensor  # int64 [n]
    weight: torch.Tensor  # float32 [n], p(t) / q(t)

    def __len__(self) -> int:
        return self.t.shape[0]


def cumulative(pmf: torch.Tensor) -> torch.Tensor:
    """CDF of a pmf, float64, with the last entry exactly 1."""
    cdf = torch.cumsum(pmf.to(torch.float64), dim=0)
    cdf = cdf / cdf[-1]
    cdf[-1] = 1.0
    return cdf


def inverse_cdf(pmf: torch.Tensor, u: torch.Tensor, cdf: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the smallest support point whose CDF is >= u (u in [0, 1)), int64."""
    cdf = cumulative(pmf) if cdf is None else cdf
    index = torch.searchsorted(cdf, u.to(torch.float64).contiguous(), right=False)
    return index.clamp_(max=pmf.shape[0] - 1)


def normalized_pmf(mass: torch.Tensor, what: str) -> torch.Tensor:
    """Normalise a non-negative mass vector; reject NaN, negative, zero-total or zero entries."""
    mass = mass.to(torch.float64)
    if not torch.isfinite(mass).all():
        raise ValueError(f"{what}: the proposal has NaN or infinite mass")
    if (mass < 0).any():
        raise ValueError(f"{what}: the proposal has negative mass")
    total = mass.sum()
    if total <= 0:
        raise ValueError(f"{what}: the proposal has zero total mass")
    pmf = mass / total
    zero = (pmf <= 0).nonzero().flatten()
    if zero.numel():
        raise ValueError(
            f"{what}: the proposal is zero at {zero.numel()} timestep(s) where p(t) > 0 "
            f"(first: offset {zero[0].item()} in the range); the importance-sampled "
            "estimate would be silently biased. Mix in a floor of the uniform pmf."
        )
    return pmf


PROPOSAL_REGISTRY: dict[str, type] = {}
"""Proposal name -> class: a proposal is one registered class declaring its option names (`parameters`)."""


def register_proposal(*names: str):
    """Register a TimestepProposal class under each of names (the `timestep_proposal` values)."""

    def register(cls: type) -> type:
        for name in names:
            PROPOSAL_REGISTRY[name] = cls
        return cls

    return register


class TimestepProposal:
    """Unnormalised proposal mass over the full schedule {0, ..., T-1}; q = mass restricted to the range.

    A subclass declares its option names in `parameters` and builds itself from them in `from_options`.
    """

    name = "proposal"
    version = 0  # bumped whenever the mass changes, so samplers know to recompute q
    parameters: tuple[str, ...] = ()  # option names (config fields) this proposal takes

    @classmethod
    def from_options(cls, name: str, *, alphas_cumprod: torch.Tensor, min_step: int, **options) -> TimestepProposal:
        """The proposal `name` from the schedule, the range's start and its own options."""
        return cls()

    def mass(self, num_train_timesteps: int) -> torch.Tensor:
        """Non-negative float64 [T]."""
        raise NotImplementedError

    def update(self, t: torch.Tensor, sq_norms: torch.Tensor) -> None:
        """Learn from the squared direction norms of draws at timesteps t (no-op unless adaptive)."""


@register_proposal("uniform")
class UniformProposal(TimestepProposal):
    """q = p: threestudio's uniform timesteps."""

    name = "uniform"

    def mass(self, num_train_timesteps: int) -> torch.Tensor:
        return torch.ones(num_train_timesteps, dtype=torch.float64)


@register_proposal("sds", "fantasia3d")
class ScheduleProposal(TimestepProposal):
    """q proportional to p * w(t) for an SDS weighting w of the noise schedule (CARV sec. 2.2)."""

    @classmethod
    def from_options(cls, name, *, alphas_cumprod, min_step, **options):
        return cls(alphas_cumprod, name)

    def __init__(self, alphas_cumprod: torch.Tensor, strategy: str):
        self.alphas_cumprod = alphas_cumprod.detach().to("cpu", torch.float64)
        self.strategy = strategy
        self.name = strategy

    def mass(self, num_train_timesteps: int) -> torch.Tensor:
        steps = torch.arange(num_train_timesteps)
        return weighting_of_schedule(self.alphas_cumprod, steps, self.strategy)


def mix_with_uniform(mass: torch.Tensor, floor: float) -> torch.Tensor:
    """(1 - floor) * normalised mass + floor * uniform, over the full schedule; floor > 0 bounds p/q by 1/floor."""
    return (1.0 - floor) * mass / mass.sum() + floor / mass.shape[0]


@register_proposal("gaussian")
class GaussianProposal(TimestepProposal):
    """q proportional to p * N(t; peak * T, (width * T)^2), mixed with a floor of p: the Gaussian-at-the-peak surrogate.

    The floor (ours) keeps the weights p/q below 1/floor, as a pure Gaussian's tails would make them explode.
    """

    name = "gaussian"
    parameters = ("gaussian_peak", "gaussian_width", "gaussian_floor")

    @classmethod
    def from_options(cls, name, *, alphas_cumprod, min_step, **options):
        return cls(**{key.removeprefix("gaussian_"): value for key, value in options.items()})

    def __init__(self, peak: float = 0.5, width: float = 0.2, floor: float = 0.05):
        if not 0.0 <= peak <= 1.0:
            raise ValueError(f"gaussian_peak must be a fraction of the schedule in [0, 1], got {peak}")
        if not width > 0.0:
            raise ValueError(f"gaussian_width must be a positive fraction of the schedule, got {width}")
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"gaussian_floor must be in [0, 1], got {floor}")
        self.peak, self.width, self.floor = float(peak), float(width), float(floor)

    def mass(self, num_train_timesteps: int) -> torch.Tensor:
        steps = torch.arange(num_train_timesteps, dtype=torch.float64)
        z = (steps - self.peak * num_train_timesteps) / (self.width * num_train_timesteps)
        return mix_with_uniform(torch.exp(-0.5 * z**2), self.floor)


def read_table(path: str) -> torch.Tensor:
    """Masses from a text file: numbers separated by whitespace or commas (one per timestep)."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as error:
        raise ValueError(f"timestep_table {path!r} cannot be read: {error.strerror or error}") from None
    try:
        return torch.tensor([float(x) for x in text.replace(",", " ").split()], dtype=torch.float64)
    except ValueError:
        raise ValueError(f"timestep_table {path!r} must hold numbers separated by spaces, commas or lines") from None


@register_proposal("table")
class TableProposal(TimestepProposal):
    """q proportional to p * a user table over the full schedule [T] or over the range [max - min + 1].

    From configs: timestep_proposal: table with timestep_table: a text file of the masses.
    """

    name = "table"
    parameters = ("table", "timestep_table")

    @classmethod
    def from_options(cls, name, *, alphas_cumprod, min_step, table=None, timestep_table: str = "", **options):
        if table is None and timestep_table:
            table = read_table(timestep_table)
        if table is None:
            raise ValueError(
                'proposal "table" needs table=<non-negative tensor over the schedule or the range> '
                "(in configs: timestep_table=<text file of masses>)"
            )
        offset = 0 if torch.as_tensor(table).numel() == alphas_cumprod.shape[0] else min_step
        return cls(table, offset)

    def __init__(self, table: torch.Tensor, offset: int):
        table = torch.as_tensor(table, dtype=torch.float64).detach().cpu()
        if table.ndim != 1:
            raise ValueError(f"table must be a 1-D tensor of masses, got shape {tuple(table.shape)}")
        if not torch.isfinite(table).all():
            raise ValueError("table has NaN or infinite entries")
        if (table < 0).any():
            raise ValueError("table has negative entries")
        if table.sum() <= 0:
            raise ValueError("table has zero total mass")
        self.table, self.offset = table, offset

    def mass(self, num_train_timesteps: int) -> torch.Tensor:
        full = torch.zeros(num_train_timesteps, dtype=torch.float64)
        end = min(self.offset + self.table.shape[0], num_train_timesteps)
        full[self.offset : end] = self.table[: end - self.offset]
        return full


@register_proposal("adaptive")
class AdaptiveProposal(TimestepProposal):
    """q proportional to p * sqrt(m(t)), m the running mean of ||f||^2 per timestep bin, mixed with a floor of p.

    Approximates the oracle q* = p sqrt(E[||f||^2 | t]) of CARV sec. 2.2 online
    (beyond the paper). Unbiased: update() only changes q for later draws. Under DDP, update() learns from
    every rank's draws (carv.distributed), so all ranks hold the same q.
    """

    name = "adaptive"
    parameters = ("adaptive_bins", "adaptive_floor", "adaptive_decay")

    @classmethod
    def from_options(cls, name, *, alphas_cumprod, min_step, **options):
        return cls(alphas_cumprod.shape[0], **{key.removeprefix("adaptive_"): value for key, value in options.items()})

    def __init__(self, num_train_timesteps: int, bins: int = 20, floor: float = 0.1, decay: float = 0.0):
        if not 1 <= bins <= num_train_timesteps:
            raise ValueError(f"adaptive_bins must be in [1, {num_train_timesteps}], got {bins}")
        if not 0.0 < floor <= 1.0:
            raise ValueError(f"adaptive_floor must be in (0, 1] so that q > 0 where p > 0, got {floor}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"adaptive_decay must be in [0, 1), got {decay}")
        self.bins, self.floor, self.decay = bins, float(floor), float(decay)
        self.bin_of_step = torch.arange(num_train_timesteps) * bins // num_train_timesteps
        self.sum_sq = torch.zeros(bins, dtype=torch.float64)
        self.count = torch.zeros(bins, dtype=torch.float64)

    def update(self, t: torch.Tensor, sq_norms: torch.Tensor) -> None:
        t = t.detach().flatten().cpu()
        sq_norms = sq_norms.detach().flatten().cpu().to(torch.float64)
        if t.shape != sq_norms.shape:
            raise ValueError(
                f"update needs one squared norm per timestep, got {tuple(t.shape)} and {tuple(sq_norms.shape)}"
            )
        if not torch.isfinite(sq_norms).all() or (sq_norms < 0).any():
            raise ValueError("update needs finite, non-negative squared norms")
        t, sq_norms = concatenated_across_ranks(t, sq_norms)  # under DDP every rank learns from all ranks' draws
        bins = self.bin_of_step[t]
        keep = 1.0 - self.decay
        self.sum_sq *= keep
        self.count *= keep
        self.sum_sq.index_add_(0, bins, sq_norms)
        self.count.index_add_(0, bins, torch.ones_like(sq_norms))
        self.version += 1

    def bin_means(self) -> torch.Tensor:
        """Running mean of ||f||^2 per bin; unvisited bins take the mean over visited ones."""
        seen = self.count > 0
        if not seen.any():
            return torch.ones(self.bins, dtype=torch.float64)
        means = torch.where(seen, self.sum_sq / self.count.clamp(min=1e-300), 0.0)
        return torch.where(seen, means, means[seen].mean())

    def mass(self, num_train_timesteps: int) -> torch.Tensor:
        learned = self.bin_means().sqrt()[self.bin_of_step]
        if learned.sum() <= 0:
            learned = torch.ones_like(learned)
        return mix_with_uniform(learned, self.floor)


WEIGHTING_STRATEGIES = ("sds", "uniform", "fantasia3d")


def weighting_of_schedule(alphas_cumprod: torch.Tensor, t: torch.Tensor, strategy: str) -> torch.Tensor:
    """SDS weighting w(t): "sds" 1 - abar_t, "uniform" 1, "fantasia3d" sqrt(abar_t) (1 - abar_t)."""
    abar = alphas_cumprod[t.to(alphas_cumprod.device)]
    if strategy == "sds":
        return 1.0 - abar
    if strategy == "uniform":
        return torch.ones_like(abar)
    if strategy == "fantasia3d":
        return abar.sqrt() * (1.0 - abar)
    raise ValueError(f"unknown weighting strategy {strategy!r}; valid: {', '.join(WEIGHTING_STRATEGIES)}")


class TimestepSampler:
    """Draws t ~ q on {min_step, ..., max_step} by inverse CDF, with weight p(t) / q(t) (CARV sec. 2.2-2.3)."""

    def __init__(
        self,
        proposal: TimestepProposal,
        *,
        min_step: int,
        max_step: int,
        num_train_timesteps: int,
        stratified: bool = False,
        strata: int = 0,
    ):
        if strata < 0:
            raise ValueError(f"strata must be >= 0 (0 = one stratum per draw), got {strata}")
        if strata and not stratified:
            raise ValueError("strata is set but stratified=False; set stratified=True or strata=0")
        self.proposal = proposal
        self.num_train_timesteps = num_train_timesteps
        self.stratified, self.strata = stratified, strata
        self.set_range(min_step, max_step)

    def set_range(self, min_step: int, max_step: int) -> None:
        """Restrict p and q to {min_step, ..., max_step}; later weights use this range."""
        min_step, max_step = int(min_step), int(max_step)
        if not 0 <= min_step <= max_step < self.num_train_timesteps:
            raise ValueError(
                f"need 0 <= min_step <= max_step < {self.num_train_timesteps} (the schedule), "
                f"got min_step={min_step}, max_step={max_step}"
            )
        self.min_step, self.max_step = min_step, max_step
        self.weight_table()

    @property
    def support(self) -> torch.Tensor:
        """The timesteps p puts mass on, int64 [max - min + 1]."""
        return torch.arange(self.min_step, self.max_step + 1)

    def target_pmf(self) -> torch.Tensor:
        """p: uniform on the range in force, float64 [max - min + 1]."""
        size = self.max_step - self.min_step + 1
        return torch.full((size,), 1.0 / size, dtype=torch.float64)

    def proposal_pmf(self) -> torch.Tensor:
        """q over the range in force, float64 [max - min + 1]."""
        return self.weight_table()[0].clone()

    def weight_table(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(q, p / q, CDF of q) over the range in force, recomputed only when the range or the proposal changes."""
        key = (self.min_step, self.max_step, self.proposal.version)
        if getattr(self, "_table_key", None) != key:
            mass = self.proposal.mass(self.num_train_timesteps)[self.min_step : self.max_step + 1]
            q = normalized_pmf(mass, f"proposal {self.proposal.name!r} on [{self.min_step}, {self.max_step}]")
            self._table = (q, self.target_pmf() / q, cumulative(q))
            self._table_key = key
        return self._table

    def uniforms(self, n: int, generator: torch.Generator | None, strata: int | None = None) -> torch.Tensor:
        """n uniforms: IID, or stratified over `strata` strata (None: the sampler's own; 0: one per draw)."""
        if self.stratified:
            strata = self.strata if strata is None else strata
            return stratified_uniforms(n, strata or n, generator=generator)
        return iid_uniforms(n, generator=generator)

    def sample(
        self, n: int, generator: torch.Generator | None = None, device=None, strata: int | None = None
    ) -> TimestepDraw:
        """n draws of (t, p(t)/q(t)); the pmf is computed once, so each weight matches the q that drew t.

        strata overrides the sampler's strata for this call (stratified samplers only; 0 = one per draw).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        q, weight_of_index, cdf = self.weight_table()
        index = inverse_cdf(q, self.uniforms(n, generator, strata), cdf)
        weight = weight_of_index[index]
        t = index + self.min_step
        return TimestepDraw(t=t.to(device), weight=weight.to(device=device, dtype=torch.float32))

    def update(self, t: torch.Tensor, sq_norms: torch.Tensor) -> None:
        """Feed squared direction norms ||f||^2 of draws at t to the proposal (adaptive only)."""
        self.proposal.update(t, sq_norms)


def draw_timesteps(
    sampler: TimestepSampler,
    renders: int,
    k: int,
    generator: torch.Generator | None = None,
    strata: int | None = None,
) -> TimestepDraw:
    """The R*K draws of one step, render-major (CARV sec. 2.3): the one rule of training and of the probes.

    IID samplers draw all R*K at once; stratified ones draw each render's K timesteps over their own strata
    (`strata` per render, None: the sampler's, 0: one per draw), so renders stay independent given the past,
    as the cost model Var = (sigma_b^2 + sigma_w^2 / K) / R assumes.
    """
    if not sampler.stratified:
        return sampler.sample(renders * k, generator=generator)
    parts = [sampler.sample(k, generator=generator, strata=strata) for _ in range(renders)]
    return TimestepDraw(torch.cat([p.t for p in parts]), torch.cat([p.weight for p in parts]))


def proposal_parameters() -> tuple[str, ...]:
    """Every option name a registered proposal declares."""
    return tuple(dict.fromkeys(p for cls in PROPOSAL_REGISTRY.values() for p in cls.parameters))


PROPOSALS = tuple(PROPOSAL_REGISTRY)
PROPOSAL_PARAMETERS = proposal_parameters()


def make_proposal(
    proposal: str | torch.Tensor, *, alphas_cumprod: torch.Tensor, min_step: int, **options
) -> TimestepProposal:
    """Build a registered proposal by name from the options it declares (others are ignored); a tensor is a "table"."""
    if isinstance(proposal, torch.Tensor):
        proposal, options = "table", {**options, "table": proposal}
    cls = PROPOSAL_REGISTRY.get(proposal) if isinstance(proposal, str) else None
    if cls is None:
        raise ValueError(f"unknown timestep proposal {proposal!r}; valid: {', '.join(PROPOSAL_REGISTRY)}")
    own = {name: value for name, value in options.items() if name in cls.parameters}
    return cls.from_options(proposal, alphas_cumprod=alphas_cumprod, min_step=min_step, **own)


def make_timestep_sampler(
    proposal: str | torch.Tensor = "uniform",
    *,
    stratified: bool = False,
    strata: int = 0,
    alphas_cumprod: torch.Tensor | None = None,
    min_step: int,
    max_step: int,
    num_train_timesteps: int | None = None,
    **proposal_params,
) -> TimestepSampler:
    """A sampler of (t, weight) for threestudio's uniform p on [min_step, max_step] and proposal q.

    alphas_cumprod defaults to Stable Diffusion's schedule with num_train_timesteps
    (default 1000) steps; it defines the "sds" and "fantasia3d" proposals.
    """
    if alphas_cumprod is None:
        alphas_cumprod = stable_diffusion_alphas_cumprod(num_train_timesteps or SD_NUM_TRAIN_TIMESTEPS)
    valid = proposal_parameters()
    unknown = sorted(set(proposal_params) - set(valid))
    if unknown:
        raise ValueError(f"unknown proposal parameter(s) {unknown}; valid: {', '.join(valid)}")
    alphas_cumprod = torch.as_tensor(alphas_cumprod).detach().to("cpu", torch.float64)
    if num_train_timesteps is not None and num_train_timesteps != alphas_cumprod.shape[0]:
        raise ValueError(
            f"num_train_timesteps={num_train_timesteps} disagrees with alphas_cumprod of length {alphas_cumprod.shape[0]}"
        )
    built = make_proposal(proposal, alphas_cumprod=alphas_cumprod, min_step=int(min_step), **proposal_params)
    return TimestepSampler(
        built,
        min_step=min_step,
        max_step=max_step,
        num_train_timesteps=alphas_cumprod.shape[0],
        stratified=stratified,
        strata=strata,
    )


def effective_sample_size(weight: torch.Tensor) -> float:
    """Kish effective sample size (sum w)^2 / sum w^2 of importance weights."""
    weight = weight.detach().to(torch.float64).flatten()
    denominator = (weight**2).sum().item()
    return (weight.sum().item() ** 2) / denominator if denominator > 0 else math.nan
