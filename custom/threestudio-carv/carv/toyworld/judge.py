"""The judge: a small CNN that names the shape, colour and view class of a 64x64 toy-world image.

It is the project's stand-in for CLIP score. The prompt fidelity of an image
is the judge's probability of the prompt's shape times its probability of the
prompt's colour.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
from torch import nn

from ..cameras import VIEW_NAMES
from .world import COLOUR_NAMES, SHAPE_NAMES, WorldViews, parse_prompt

JUDGE_SIZE = 64
WEIGHTS_FILE = "judge.pt"
CLASSES_FILE = "classes.json"


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ToyJudge(nn.Module):
    """Conv net on [N, 3, 64, 64] images in [0, 1] with three heads: shape, colour, view-class logits.

    A fourth head, used only in training, regresses the camera's angles
    (cos and sin of azimuth, sin of elevation): it teaches the features where
    the camera is, which the view class needs near its thresholds.
    """

    def __init__(self, n_shapes: int = len(SHAPE_NAMES), n_colours: int = len(COLOUR_NAMES), n_views: int = 4):
        super().__init__()
        self.features = nn.Sequential(
            _block(3, 32, 2), _block(32, 64, 2), _block(64, 128, 2), _block(128, 128, 2), nn.Flatten()
        )
        self.trunk = nn.Sequential(nn.Linear(128 * 4 * 4, 256), nn.ReLU(inplace=True), nn.Dropout(0.2))
        self.shape_head = nn.Linear(256, n_shapes)
        self.colour_head = nn.Linear(256, n_colours)
        self.view_head = nn.Linear(256, n_views)
        self.angle_head = nn.Linear(256, 3)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shape, colour and view-class logits."""
        return self.heads(images)[:3]

    def heads(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Shape, colour, view-class logits and the angle regression [N, 3]."""
        h = self.trunk(self.features(images * 2.0 - 1.0))
        return self.shape_head(h), self.colour_head(h), self.view_head(h), self.angle_head(h)


def as_judge_input(images: torch.Tensor) -> torch.Tensor:
    """Images [N, 3, H, W] or [N, H, W, 3] in [0, 1] -> float [N, 3, 64, 64] (area-resized)."""
    if images.ndim != 4:
        raise ValueError(f"images must be [N, 3, H, W] or [N, H, W, 3], got {tuple(images.shape)}")
    if images.shape[1] != 3 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    if images.shape[1] != 3:
        raise ValueError(f"images must have 3 colour channels, got {tuple(images.shape)}")
    images = images.float()
    if images.shape[-2:] != (JUDGE_SIZE, JUDGE_SIZE):
        images = nn.functional.interpolate(images, size=(JUDGE_SIZE, JUDGE_SIZE), mode="area")
    return images


@dataclass
class JudgeVerdict:
    """Class probabilities [N, classes] for shape, colour and view class."""

    shape: torch.Tensor
    colour: torch.Tensor
    view: torch.Tensor


class Judge:
    """A loaded judge; ``judge(images)`` returns a JudgeVerdict."""

    def __init__(self, model: ToyJudge):
        self.model = model.eval()

    @classmethod
    def load(cls, folder: str) -> Judge:
        with open(os.path.join(folder, CLASSES_FILE), encoding="utf-8") as f:
            classes = json.load(f)
        if classes["shapes"] != list(SHAPE_NAMES) or classes["colours"] != list(COLOUR_NAMES):
            raise ValueError(f"judge in {folder} was trained on other classes: {classes}")
        model = ToyJudge(len(classes["shapes"]), len(classes["colours"]), len(classes["views"]))
        state = torch.load(os.path.join(folder, WEIGHTS_FILE), map_location="cpu", weights_only=True)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as error:  # a tensor of another shape
            message = str(error).splitlines()[-1].strip()
            raise ValueError(f"{folder}/{WEIGHTS_FILE} does not fit a ToyJudge: {message}") from None
        missing = [key for key in missing if not key.startswith("angle_head.")]  # training-only head: may be absent
        if missing or unexpected:
            raise ValueError(
                f"{folder}/{WEIGHTS_FILE} is not a ToyJudge: {len(missing)} weights missing, "
                f"{len(unexpected)} unexpected (e.g. {(missing + unexpected)[0]!r})"
            )
        return cls(model)

    def save(self, folder: str, accuracy: dict | None = None) -> None:
        os.makedirs(folder, exist_ok=True)
        torch.save(self.model.state_dict(), os.path.join(folder, WEIGHTS_FILE))
        classes = {"shapes": list(SHAPE_NAMES), "colours": list(COLOUR_NAMES), "views": list(VIEW_NAMES)}
        if accuracy is not None:
            classes["held_out_accuracy"] = accuracy
        with open(os.path.join(folder, CLASSES_FILE), "w", encoding="utf-8") as f:
            json.dump(classes, f, indent=1)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> JudgeVerdict:
        shape, colour, view = self.model(as_judge_input(images))
        return JudgeVerdict(shape.softmax(-1), colour.softmax(-1), view.softmax(-1))

    def prompt_fidelity(self, images: torch.Tensor, prompt: str) -> torch.Tensor:
        """Prompt fidelity [N] of images [N, 3, H, W] or [N, H, W, 3]: p(prompt's shape) * p(prompt's colour)."""
        parsed = parse_prompt(prompt)
        verdict = self(images)
        return verdict.shape[:, parsed.shape] * verdict.colour[:, parsed.colour]

    def fidelity_over_views(self, views: torch.Tensor, prompt: str) -> tuple[float, float]:
        """Mean and standard error of the prompt fidelity over N rendered views [N, ...] of one 3D result."""
        fidelity = self.prompt_fidelity(views, prompt)
        if fidelity.numel() < 2:
            return float(fidelity.mean()), float("nan")
        return float(fidelity.mean()), float(fidelity.std() / fidelity.numel() ** 0.5)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Robustness to generated images: random blur, pixel noise and slight brightness change."""
    n = images.shape[0]
    blurred = nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)
    use_blur = (torch.rand(n, 1, 1, 1, generator=generator) < 0.3).float()
    images = use_blur * blurred + (1.0 - use_blur) * images
    brightness = 1.0 + 0.1 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    sigma = 0.04 * torch.rand(n, 1, 1, 1, generator=generator)
    noise = sigma * torch.randn(images.shape, generator=generator)
    return (images * brightness + noise).clamp(0.0, 1.0)


def _labels(world: WorldViews, index: torch.Tensor, colour: torch.Tensor):
    return world.shape[index], colour, world.view[index]


def camera_angles(world: WorldViews, index: torch.Tensor) -> torch.Tensor:
    """Regression targets [B, 3]: cos and sin of the azimuth, sin of the elevation."""
    azimuth, elevation = torch.deg2rad(world.azimuth[index]), torch.deg2rad(world.elevation[index])
    return torch.stack([azimuth.cos(), azimuth.sin(), elevation.sin()], -1).float()


def train_judge(
    world: WorldViews,
    steps: int,
    generator: torch.Generator,
    batch: int = 64,
    lr: float = 2e-3,
    progress=None,
    device: str = "cpu",
    angle_weight: float = 1.0,
):
    """Train a ToyJudge on random (view, colour) draws from ``world`` (all colour-shape pairs).

    The loss is the three classification losses plus ``angle_weight`` times the
    angle regression's MSE. Trains on ``device`` with draws from the CPU
    ``generator``; the returned judge is on the CPU.
    """
    model = ToyJudge().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(steps):
        index = torch.randint(len(world), (batch,), generator=generator)
        colour = torch.randint(len(COLOUR_NAMES), (batch,), generator=generator)
        images = augment(world.images(index, colour), generator).to(device)
        shape_y, colour_y, view_y = (y.to(device) for y in _labels(world, index, colour))
        shape, col, view, angles = model.heads(images)
        loss = loss_fn(shape, shape_y) + loss_fn(col, colour_y) + loss_fn(view, view_y)
        loss = loss + angle_weight * (angles - camera_angles(world, index).to(device)).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress is not None:
            progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            progress.update(1)
    return Judge(model.cpu())


@torch.no_grad()
def judge_accuracy(judge: Judge, world: WorldViews, generator: torch.Generator, batch: int = 256) -> dict:
    """Accuracy of shape, colour and view class on every view of ``world`` in a random colour each."""
    correct = {"shape": 0, "colour": 0, "view": 0}
    for start in range(0, len(world), batch):
        index = torch.arange(start, min(start + batch, len(world)))
        colour = torch.randint(len(COLOUR_NAMES), (len(index),), generator=generator)
        verdict = judge(world.images(index, colour))
        for key, truth in zip(("shape", "colour", "view"), _labels(world, index, colour), strict=True):
            correct[key] += int((getattr(verdict, key).argmax(-1) == truth).sum())
    return {key: value / len(world) for key, value in correct.items()}
