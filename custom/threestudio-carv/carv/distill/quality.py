"""Quality of one-step samples: the judge's prompt fidelity and a Frechet distance of judge features (our FID).

The reference set is the teacher's own multi-step samples (DDIM with the real score's guidance), so a
student that matched the guided teacher's distribution would score the teacher's own distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..conditioning import classifier_free_guidance


@torch.no_grad()
def teacher_samples(
    teacher, scheduler, cond: torch.Tensor, uncond: torch.Tensor, noise: torch.Tensor, steps: int, guidance_scale: float
) -> torch.Tensor:
    """Multi-step latents [n, C, h, w] of the teacher from noise [n, C, h, w] for per-sample cond [n, N, F]."""
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    both = torch.cat([cond, uncond.expand_as(cond)])
    for t in scheduler.timesteps:
        t_batch = torch.full((2 * x.shape[0],), int(t), dtype=torch.long)
        eps_cond, eps_uncond = teacher.predict_noise(torch.cat([x, x]), t_batch, both).chunk(2)
        x = scheduler.step(classifier_free_guidance(eps_cond, eps_uncond, guidance_scale), t, x).prev_sample
    return x


@torch.no_grad()
def decode(teacher, latents: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Images [n, 3, H, W] in [0, 1] from latents through the teacher's VAE decoder."""
    vae = teacher.vae
    scale = vae.config.scaling_factor
    images = [
        vae.decode((latents[i : i + batch] / scale).to(teacher.weights_dtype)).sample
        for i in range(0, len(latents), batch)
    ]
    return (torch.cat(images).float() * 0.5 + 0.5).clamp(0.0, 1.0)


@torch.no_grad()
def judge_features(judge, images: torch.Tensor) -> torch.Tensor:
    """The judge's penultimate features [n, 256] (its trunk), the space of the Frechet distance."""
    from ..toyworld.judge import as_judge_input

    model = judge.model.eval()
    return model.trunk(model.features(as_judge_input(images) * 2.0 - 1.0)).double()


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a^(1/2) C_b C_a^(1/2))^(1/2)) of feature sets a [n, d], b [m, d].

    With centred data A = (a - mu_a) / sqrt(n - 1) (C_a = A^T A) and B likewise, the eigenvalues of
    C_a^(1/2) C_b C_a^(1/2) are the squared singular values of A B^T, so the trace of its root is the nuclear
    norm of the n x m matrix A B^T: exact, and cheap when n, m < d.
    """
    a, b = a.double(), b.double()
    centred_a = (a - a.mean(0)) / (a.shape[0] - 1) ** 0.5
    centred_b = (b - b.mean(0)) / (b.shape[0] - 1) ** 0.5
    mean_term = (a.mean(0) - b.mean(0)).pow(2).sum()
    cross = torch.linalg.matrix_norm(centred_a @ centred_b.T, ord="nuc")
    return (mean_term + centred_a.pow(2).sum() + centred_b.pow(2).sum() - 2.0 * cross).item()


@dataclass(frozen=True)
class Interval:
    """An estimate with a percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def bootstrap_frechet(
    students: dict[str, torch.Tensor], reference: torch.Tensor, generator: torch.Generator, rounds: int = 200
) -> dict:
    """Frechet distance of each student's features [n, d] to the reference [m, d], and of each difference to the
    first student, with 95% percentile intervals from one paired bootstrap (students share the row resampling:
    their samples came from the same noise and prompts)."""
    names = list(students)
    n, m = next(iter(students.values())).shape[0], reference.shape[0]
    draws = {name: [] for name in names}
    for _ in range(rounds):
        rows = torch.randint(0, n, (n,), generator=generator)
        ref = reference[torch.randint(0, m, (m,), generator=generator)]
        for name in names:
            draws[name].append(frechet_distance(students[name][rows], ref))
    out = {}
    for name in names:
        values = torch.tensor(draws[name], dtype=torch.float64)
        out[name] = interval(frechet_distance(students[name], reference), values).as_dict()
    first = names[0]
    for name in names[1:]:
        difference = torch.tensor(draws[name], dtype=torch.float64) - torch.tensor(draws[first], dtype=torch.float64)
        out[f"{name}_minus_{first}"] = interval(out[name]["value"] - out[first]["value"], difference).as_dict()
    return out


def interval(value: float, draws: torch.Tensor) -> Interval:
    """95% percentile interval of bootstrap draws around an estimate."""
    low, high = torch.quantile(draws, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return Interval(value, low, high)


def mean_with_se(values: torch.Tensor) -> dict:
    """Mean and standard error of per-sample values [n]."""
    values = values.double()
    return {"mean": values.mean().item(), "se": (values.std() / values.numel() ** 0.5).item()}
