"""The recipe that builds load/ from nothing: world renders, judge, VAE, then UNet and text encoder.

Each stage saves its result in a work folder and is skipped when that result
exists; the two long stages (VAE, UNet) also save periodic checkpoints that
``resume`` continues from (with the random generator's state). Imports
diffusers through ``carv.toyworld.teacher``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from ..cameras import VIEW_NAMES
from . import teacher as T
from .judge import judge_accuracy, train_judge
from .world import COLOUR_NAMES, COLOURS, SHAPE_NAMES, WorldViews, caption, render_world, training_pairs


@dataclass
class RecipeSettings:
    """Sizes and lengths of every stage (defaults: the shipped teacher)."""

    seed: int = 0
    views_per_shape: int = 400
    test_views_per_shape: int = 60
    judge_views_per_shape: int = 1200
    judge_steps: int = 6000
    judge_batch: int = 128
    judge_angle_weight: float = 1.0
    vae_steps: int = 2400
    vae_batch: int = 16
    vae_kl_weight: float = 1e-4
    vae_random_colour_share: float = 0.5
    vae_corrupt_share: float = 0.5
    vae_max_noise: float = 0.1
    colours_per_view: int = 2
    unet_steps: int = 5200
    unet_batch: int = 48
    unet_lr: float = 3e-4
    ema_decay: float = 0.999
    empty_caption_share: float = 0.1
    plain_caption_share: float = 0.2
    checkpoint_every: int = 250


def smoke_settings(seed: int = 0) -> RecipeSettings:
    """A few steps of every stage, to check the recipe end to end in about a minute."""
    return RecipeSettings(
        seed=seed,
        views_per_shape=24,
        test_views_per_shape=8,
        judge_views_per_shape=8,
        judge_steps=20,
        judge_batch=16,
        vae_steps=10,
        vae_batch=8,
        vae_kl_weight=1e-3,
        unet_steps=20,
        unet_batch=8,
        ema_decay=0.9,
        checkpoint_every=10,
    )


class StageClock:
    """Wall-clock and CPU (user + sys) seconds per stage, accumulated across resumed runs in a JSON file."""

    def __init__(self, path: str):
        self.path = path
        self.times = json.load(open(path)) if os.path.exists(path) else {}

    def run(self, name: str, fn: Callable):
        wall, cpu = time.time(), sum(os.times()[:2])
        result = fn()
        entry = self.times.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
        entry["wall_s"] += time.time() - wall
        entry["cpu_s"] += sum(os.times()[:2]) - cpu
        with open(self.path, "w") as f:
            json.dump(self.times, f, indent=1)
        return result


def _cached(path: str, build: Callable[[], dict]) -> dict:
    if not os.path.exists(path):
        torch.save(build(), path + ".tmp")
        os.replace(path + ".tmp", path)
    return torch.load(path, weights_only=False)


def train_loop(name, path, modules, optimizer, total, step_fn, every, generator):
    """Run ``step_fn()`` (returns the loss) until ``total`` steps, checkpointing to ``path`` every ``every`` steps."""
    step = 0
    if os.path.exists(path):
        state = torch.load(path, map_location="cpu", weights_only=False)
        for key, module in modules.items():
            module.load_state_dict(state[key])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step = state["step"]
    with tqdm(total=total, initial=step, desc=name, mininterval=5.0) as bar:
        while step < total:
            loss = step_fn(step)
            step += 1
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(1)
            if step % every == 0 or step == total:
                state = {key: module.state_dict() for key, module in modules.items()}
                state.update(optimizer=optimizer.state_dict(), generator=generator.get_state(), step=step)
                torch.save(state, path + ".tmp")
                os.replace(path + ".tmp", path)


def _world_stage(work, settings, generator, views, name):
    def build():
        with tqdm(total=views * len(SHAPE_NAMES), desc=f"render {name}", mininterval=5.0) as bar:
            return render_world(views, generator, progress=bar).state_dict()

    return WorldViews.from_state_dict(_cached(os.path.join(work, f"{name}.pt"), build))


def _judge_stage(out, world, world_test, settings, generator, device):
    with tqdm(total=settings.judge_steps, desc="judge", mininterval=5.0) as bar:
        judge = train_judge(
            world,
            settings.judge_steps,
            generator,
            batch=settings.judge_batch,
            progress=bar,
            device=device,
            angle_weight=settings.judge_angle_weight,
        )
    accuracy = judge_accuracy(judge, world_test, generator)
    judge.save(os.path.join(out, "judge"), accuracy)
    return accuracy


def training_views(world: WorldViews) -> tuple[torch.Tensor, torch.Tensor]:
    """(view index, colour index) of every training image: all views x colours, held-out pairs excluded."""
    allowed = torch.zeros(len(COLOUR_NAMES), len(SHAPE_NAMES), dtype=torch.bool)
    for c, s in training_pairs():
        allowed[c, s] = True
    view = torch.arange(len(world)).repeat_interleave(len(COLOUR_NAMES))
    colour = torch.arange(len(COLOUR_NAMES)).repeat(len(world))
    keep = allowed[colour, world.shape[view]]
    return view[keep], colour[keep]


def _colour_subset(view: torch.Tensor, per_view: int, generator: torch.Generator) -> torch.Tensor:
    """Indices keeping ``per_view`` random entries (colours) of each view; ``view`` is sorted."""
    order = torch.argsort(torch.rand(view.shape[0], generator=generator) + view.double() * 2.0)
    rank = torch.arange(view.shape[0]) - torch.searchsorted(view[order], view[order])
    return torch.sort(order[rank < per_view]).values


def vae_batch(
    world: WorldViews, allowed: tuple[torch.Tensor, torch.Tensor], settings: RecipeSettings, generator: torch.Generator
) -> torch.Tensor:
    """A VAE training batch [B, 3, 64, 64]: random views, a share in any RGB colour, the rest in the world's colours.

    ``allowed`` is (view index, colour index) of the training images, from ``training_views(world)``.

    Any colour (not just the six named ones) makes the VAE a faithful
    autoencoder of colour, so that its encoder cannot map an off-palette render
    to a palette colour's latent (that is how score distillation of "a red mug"
    once ended with a green mug whose latent decoded red).
    """
    view, colour = allowed
    pick = torch.randint(len(view), (settings.vae_batch,), generator=generator)
    palette = torch.tensor([COLOURS[name] for name in COLOUR_NAMES])
    rgb = torch.rand(settings.vae_batch, 3, generator=generator)
    anything = torch.rand(settings.vae_batch, 1, generator=generator) < settings.vae_random_colour_share
    return world.paint(view[pick], torch.where(anything, rgb, palette[colour[pick]]))


def _vae_stage(work, world, settings, generator, sizes, device):
    vae = T.build_vae(sizes).to(device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    allowed = training_views(world)

    def step(i):
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * min(1.0, (i + 1) / 50) * (0.1 + 0.9 * (1 - i / settings.vae_steps))
        images = vae_batch(world, allowed, settings, generator).to(device)
        inputs = T.corrupt(images, settings.vae_corrupt_share, settings.vae_max_noise, generator)
        loss = T.vae_loss(vae, images, settings.vae_kl_weight, generator, inputs=inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    train_loop(
        "vae",
        os.path.join(work, "vae_ckpt.pt"),
        {"vae": vae},
        optimizer,
        settings.vae_steps,
        step,
        settings.checkpoint_every,
        generator,
    )
    return vae.eval()


def _latent_stage(work, world, vae, settings, generator, device):
    def build():
        view, colour = training_views(world)
        keep = _colour_subset(view, settings.colours_per_view, generator)
        view, colour = view[keep], colour[keep]
        means, stds = [], []
        for start in tqdm(range(0, len(view), 256), desc="encode", mininterval=5.0):
            images = world.images(view[start : start + 256], colour[start : start + 256])
            m, s = T.encode_stats(vae, images.to(device))
            means.append(m.cpu().half())
            stds.append(s.cpu().half())
        mean, std = torch.cat(means), torch.cat(stds)
        sample = mean.float() + std.float() * torch.randn(mean.shape, generator=generator)
        scale = 1.0 / float(sample.std())
        return {"view": view, "colour": colour, "mean": mean, "std": std, "scaling_factor": scale}

    return _cached(os.path.join(work, "latents.pt"), build)


def caption_table(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [colours, shapes, 1 + views, L] (plain caption, then each view suffix) and of '' [L]."""
    prompts = [caption(c, s, v) for c in COLOUR_NAMES for s in SHAPE_NAMES for v in (None, *VIEW_NAMES)]
    ids = T.tokenize(tokenizer, prompts).view(len(COLOUR_NAMES), len(SHAPE_NAMES), 1 + len(VIEW_NAMES), -1)
    return ids, T.tokenize(tokenizer, [""])[0]


def _unet_stage(work, world, latents, tokenizer, settings, generator, sizes, device):
    unet, text_encoder = T.build_unet(sizes).to(device), T.build_text_encoder(tokenizer, sizes).to(device)
    ema_unet, ema_text = T.EMA(unet, settings.ema_decay), T.EMA(text_encoder, settings.ema_decay)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=settings.unet_lr, weight_decay=1e-2)
    alphas_cumprod = T.make_scheduler().alphas_cumprod
    ids, empty = caption_table(tokenizer)
    shape_of = world.shape[latents["view"]]
    view_of = world.view[latents["view"]]

    def step(i):
        for group in optimizer.param_groups:
            group["lr"] = settings.unet_lr * min(1.0, (i + 1) / 200) * (0.1 + 0.9 * (1 - i / settings.unet_steps))
        pick = torch.randint(len(shape_of), (settings.unet_batch,), generator=generator)
        mean, std = latents["mean"][pick].float(), latents["std"][pick].float()
        z = (mean + std * torch.randn(mean.shape, generator=generator)) * latents["scaling_factor"]
        u = torch.rand(settings.unet_batch, generator=generator)
        variant = torch.where(u < settings.empty_caption_share + settings.plain_caption_share, 0, 1 + view_of[pick])
        tokens = ids[latents["colour"][pick], shape_of[pick], variant]
        tokens[u < settings.empty_caption_share] = empty
        loss = T.diffusion_loss(unet, text_encoder, z.to(device), tokens.to(device), alphas_cumprod, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        ema_unet.update(unet)
        ema_text.update(text_encoder)
        return loss.item()

    modules = {"unet": unet, "text": text_encoder, "ema_unet": ema_unet.module, "ema_text": ema_text.module}
    train_loop(
        "unet",
        os.path.join(work, "unet_ckpt.pt"),
        modules,
        optimizer,
        settings.unet_steps,
        step,
        settings.checkpoint_every,
        generator,
    )
    return ema_unet.module, ema_text.module


def build_everything(
    out: str, work: str, settings: RecipeSettings, sizes: T.TeacherSizes | None = None, device: str = "cpu"
) -> dict:
    """Run every stage (skipping finished ones), write out/toy-teacher and out/judge; return the stage times.

    Training runs on ``device``; every random draw comes from seeded CPU
    generators, and renders and checkpoints stay on the CPU.
    """
    sizes = sizes or T.TeacherSizes()
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "settings.json"), "w") as f:
        json.dump(asdict(settings) | {"sizes": asdict(sizes)}, f, indent=1)
    clock = StageClock(os.path.join(work, "timings.json"))
    generator = torch.Generator().manual_seed(settings.seed)
    world = clock.run("world", lambda: _world_stage(work, settings, generator, settings.views_per_shape, "world"))
    test_gen = torch.Generator().manual_seed(settings.seed + 1)
    world_test = clock.run(
        "world_test", lambda: _world_stage(work, settings, test_gen, settings.test_views_per_shape, "world_test")
    )
    judge_gen = torch.Generator().manual_seed(settings.seed + 2)
    if not os.path.exists(os.path.join(out, "judge", "classes.json")):
        world_judge = clock.run(
            "world_judge",
            lambda: _world_stage(work, settings, judge_gen, settings.judge_views_per_shape, "world_judge"),
        )
        views = WorldViews.concatenate([world, world_judge])
        clock.run("judge", lambda: _judge_stage(out, views, world_test, settings, judge_gen, device))
    vae_gen = torch.Generator().manual_seed(settings.seed + 3)
    vae = clock.run("vae", lambda: _vae_stage(work, world, settings, vae_gen, sizes, device))
    latents = clock.run("latents", lambda: _latent_stage(work, world, vae, settings, vae_gen, device))
    vae.register_to_config(scaling_factor=latents["scaling_factor"])
    tokenizer = T.build_tokenizer(os.path.join(work, "tokenizer"))
    unet_gen = torch.Generator().manual_seed(settings.seed + 4)
    unet, text_encoder = clock.run(
        "unet", lambda: _unet_stage(work, world, latents, tokenizer, settings, unet_gen, sizes, device)
    )
    clock.run("export", lambda: T.save_teacher(os.path.join(out, "toy-teacher"), vae, unet, text_encoder, tokenizer))
    return clock.times


def export_checkpoint(work: str, folder: str, sizes: T.TeacherSizes | None = None) -> int:
    """Write a teacher folder from the work folder's latest VAE and UNet checkpoints (EMA weights); return its step."""
    sizes = sizes or T.TeacherSizes()
    vae = T.build_vae(sizes)
    vae.load_state_dict(torch.load(os.path.join(work, "vae_ckpt.pt"), map_location="cpu", weights_only=False)["vae"])
    latents = torch.load(os.path.join(work, "latents.pt"), weights_only=False)
    vae.register_to_config(scaling_factor=latents["scaling_factor"])
    tokenizer = T.build_tokenizer(os.path.join(work, "tokenizer"))
    unet, text_encoder = T.build_unet(sizes), T.build_text_encoder(tokenizer, sizes)
    state = torch.load(os.path.join(work, "unet_ckpt.pt"), map_location="cpu", weights_only=False)
    unet.load_state_dict(state["ema_unet"])
    text_encoder.load_state_dict(state["ema_text"])
    T.save_teacher(folder, vae.eval(), unet.eval(), text_encoder.eval(), tokenizer)
    return state["step"]
