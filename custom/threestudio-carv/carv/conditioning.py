"""Text conditioning of a guided noise prediction: CFG and Perp-Neg, in threestudio's conventions.

Embeddings come one set per render or shared; `blocks_for` lays out the UNet
batch (cond, uncond, then each negative) for a list of draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TextConditioning:
    """Text embeddings, one set per render ([R, ...]) or shared ([1, ...]).

    With negatives it is Perp-Neg (threestudio's prompt_utils.use_perp_neg).
    """

    cond: torch.Tensor  # [R or 1, N, F]
    uncond: torch.Tensor  # [R or 1, N, F]
    negatives: torch.Tensor | None = None  # [R or 1, M, N, F] Perp-Neg negative prompts
    negative_weights: torch.Tensor | None = None  # [R or 1, M] Perp-Neg weights (threestudio's are <= 0)

    @classmethod
    def from_threestudio(
        cls, text_embeddings: torch.Tensor, batch_size: int, neg_guidance_weights: torch.Tensor | None = None
    ) -> TextConditioning:
        """Split threestudio's layout: [cond B; uncond B], or Perp-Neg's [pos B; uncond B; neg M*B] + weights [B, M]."""
        cond, uncond = text_embeddings[:batch_size], text_embeddings[batch_size : 2 * batch_size]
        if neg_guidance_weights is None:
            if text_embeddings.shape[0] != 2 * batch_size:
                raise ValueError(f"expected 2 * {batch_size} text embeddings, got {text_embeddings.shape[0]}")
            return cls(cond, uncond)
        m = neg_guidance_weights.shape[-1]
        if text_embeddings.shape[0] != (2 + m) * batch_size:
            raise ValueError(f"Perp-Neg needs (2 + {m}) * {batch_size} embeddings, got {text_embeddings.shape[0]}")
        negatives = text_embeddings[2 * batch_size :].view(batch_size, m, *text_embeddings.shape[1:])
        return cls(cond, uncond, negatives, neg_guidance_weights.view(batch_size, m))

    @property
    def perp_neg(self) -> bool:
        return self.negatives is not None

    def check(self, renders: int) -> None:
        """Reject counts that are neither 1 nor R, mismatched shapes, half-given Perp-Neg, NaN or Inf."""
        parts = {"cond": self.cond, "uncond": self.uncond}
        if (self.negatives is None) != (self.negative_weights is None):
            raise ValueError("Perp-Neg needs both negatives [R, M, N, F] and negative_weights [R, M]")
        if self.perp_neg:
            parts.update(negatives=self.negatives, negative_weights=self.negative_weights)
            if (
                self.negatives.shape[:2] != self.negative_weights.shape
                or self.negatives.shape[2:] != self.cond.shape[1:]
            ):
                raise ValueError(
                    f"negatives {tuple(self.negatives.shape)} and negative_weights "
                    f"{tuple(self.negative_weights.shape)} do not fit cond {tuple(self.cond.shape)}"
                )
        for name, value in parts.items():
            if value.shape[0] not in (1, renders):
                raise ValueError(f"{name} holds {value.shape[0]} embeddings for {renders} renders; give 1 or {renders}")
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} contains NaN or Inf")
        if self.cond.ndim != 3 or self.uncond.shape[1:] != self.cond.shape[1:]:
            raise ValueError(
                f"cond and uncond must both be [R or 1, N, F], got {tuple(self.cond.shape)} and "
                f"{tuple(self.uncond.shape)}"
            )

    def blocks_for(self, render_index: torch.Tensor) -> torch.Tensor:
        """Embeddings of the UNet batch for draws of render_index [n]: cond, uncond, then each negative, [B*n, N, F]."""
        blocks = [pick(self.cond, render_index), pick(self.uncond, render_index)]
        if self.perp_neg:
            blocks += [pick(self.negatives[:, i], render_index) for i in range(self.negatives.shape[1])]
        return torch.cat(blocks, dim=0)


def pick(embeddings: torch.Tensor, render_index: torch.Tensor) -> torch.Tensor:
    """Rows of render_index from per-render embeddings, or the shared row repeated."""
    if embeddings.shape[0] == 1:
        return embeddings.expand(render_index.shape[0], *embeddings.shape[1:])
    return embeddings[render_index.to(embeddings.device)]


def perpendicular_component(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x minus its projection on y, per row of [n, ...] (Perp-Neg, Armandpour et al. 2023)."""
    dims = tuple(range(1, x.ndim))
    scale = (x * y).sum(dim=dims, keepdim=True) / (y * y).sum(dim=dims, keepdim=True).clamp(min=eps)
    return x - scale * y


def classifier_free_guidance(eps_text: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """threestudio's CFG convention eps_text + s (eps_text - eps_uncond) (= diffusers' with s + 1)."""
    return eps_text + scale * (eps_text - eps_uncond)


def perp_neg_guidance(eps: torch.Tensor, weights: torch.Tensor, scale: float) -> torch.Tensor:
    """threestudio's Perp-Neg: eps_u + s (e_pos + sum_i w_i perp(eps_neg_i - eps_u, e_pos)); eps [2+M, n, ...]."""
    eps_text, eps_uncond = eps[0], eps[1]
    e_pos = eps_text - eps_uncond
    shape = (-1,) + (1,) * (e_pos.ndim - 1)
    accumulated = torch.zeros_like(e_pos)
    for i in range(eps.shape[0] - 2):
        accumulated += weights[:, i].view(shape) * perpendicular_component(eps[2 + i] - eps_uncond, e_pos)
    return eps_uncond + scale * (e_pos + accumulated)
