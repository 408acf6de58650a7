"""carv-stable-diffusion-guidance and carv-deepfloyd-if-guidance: threestudio guidance on carv's CARV SDS.

threestudio's loading, prompt utils, view-dependent prompting, Perp-Neg and update_step
schedules (C() of min/max_step_percent and grad_clip, sqrt_anneal) around
carv.score_distillation.ScoreDistillation, which holds all of the sampling math. With the
defaults (K = 1, uniform t, no stratification, native_resolution 512 / 64) the loss and
gradient are those of stable-diffusion-guidance / deep-floyd-guidance for the same (t, eps); unlike
them it never decodes latents, and NaN in the teacher output is an error, not nan_to_num.
"""

from dataclasses import dataclass, field, fields
from typing import Any

import threestudio
import torch
from diffusers import DDIMScheduler, IFPipeline, StableDiffusionPipeline
from threestudio.utils.base import BaseObject
from threestudio.utils.misc import C, cleanup, parse_version

from carv.autotune import AutoKOptions, auto_requested, check_auto_options
from carv.diffusion.teacher import teacher_from_modules
from carv.score_distillation import ScoreDistillation, ScoreDistillationConfig, TextConditioning

from .registration import register_once


class CarvGuidance(BaseObject):
    """The shared body of the CARV guidances; subclasses only load their teacher."""

    @dataclass
    class Config(BaseObject.Config, ScoreDistillationConfig, AutoKOptions):
        """carv's guidance options (ScoreDistillationConfig, AutoKOptions: declared there once) with threestudio's
        types and defaults where they differ, and threestudio's own loading options."""

        pretrained_model_name_or_path: str = "runwayml/stable-diffusion-v1-5"  # local folder or hub name
        enable_memory_efficient_attention: bool = False  # xformers on torch < 2 (torch 2 has it built in)
        enable_sequential_cpu_offload: bool = False  # diffusers' sequential CPU offload
        enable_attention_slicing: bool = False  # diffusers' attention slicing
        enable_channels_last_format: bool = False  # UNet in channels-last memory format
        grad_clip: Any | None = None  # C() schedule clamping the direction; BIASES the estimator
        half_precision_weights: bool = True  # float16 teacher weights (threestudio's default)
        min_step_percent: Any = 0.02  # C() schedule; min_step = int(T * min_step_percent)
        max_step_percent: Any = 0.98  # C() schedule; max_step = int(T * max_step_percent)
        noise_samples_per_render: Any = 1  # K: (t, eps) draws per render, all on one encode; or "auto"
        sqrt_anneal: bool = False  # HiFA's deterministic t schedule; no longer an expectation over t
        trainer_max_steps: int = 25000  # length of the sqrt_anneal schedule
        view_dependent_prompting: bool = True  # threestudio's front/side/back/overhead prompts
        max_items_eval: int = 4  # accepted for config compatibility; guidance_eval is not supported
        native_resolution: int = 512  # image side fed to the teacher (threestudio: 512); 0 = teacher's own

    cfg: Config

    def configure(self) -> None:
        threestudio.info(f"Loading {self.__class__.__name__} from {self.cfg.pretrained_model_name_or_path} ...")
        self.weights_dtype = torch.float16 if self.cfg.half_precision_weights else torch.float32
        self.distillation = ScoreDistillation(self.load_teacher(), self.distillation_config())
        self.num_train_timesteps = self.distillation.num_train_timesteps
        cleanup()

    def load_teacher(self):
        """The frozen carv teacher, loaded as threestudio loads it (each subclass)."""
        raise NotImplementedError

    def apply_pipeline_options(self, pipe) -> None:
        """threestudio's memory options of the diffusers pipeline."""
        if self.cfg.enable_memory_efficient_attention and parse_version(torch.__version__) < parse_version("2"):
            pipe.enable_xformers_memory_efficient_attention()
        if self.cfg.enable_sequential_cpu_offload:
            pipe.enable_sequential_cpu_offload()
        if self.cfg.enable_attention_slicing:
            pipe.enable_attention_slicing(1)
        if self.cfg.enable_channels_last_format:
            pipe.unet.to(memory_format=torch.channels_last)

    def distillation_config(self) -> ScoreDistillationConfig:
        """The carv options of this config, schedules evaluated at step 0 (update_step re-applies them)."""
        values = {option.name: getattr(self.cfg, option.name) for option in fields(ScoreDistillationConfig)}
        values.update(
            min_step_percent=C(self.cfg.min_step_percent, 0, 0),
            max_step_percent=C(self.cfg.max_step_percent, 0, 0),
            grad_clip=None,
        )
        if auto_requested(self.cfg.noise_samples_per_render):  # the system's AutoKController chooses K per step
            check_auto_options(self.cfg, self.cfg.timestep_strata)
            values["noise_samples_per_render"] = self.cfg.auto_k_initial
        return ScoreDistillationConfig(**values)

    min_step = property(lambda self: self.distillation.min_step, doc="current lowest timestep")
    max_step = property(lambda self: self.distillation.max_step, doc="current highest timestep")

    def text_conditioning(self, prompt_utils, elevation, azimuth, camera_distances) -> TextConditioning:
        """threestudio's (view-dependent, optionally Perp-Neg) embeddings as carv TextConditioning."""
        view_dependent = self.cfg.view_dependent_prompting
        if prompt_utils.use_perp_neg:
            embeddings, weights = prompt_utils.get_text_embeddings_perp_neg(
                elevation, azimuth, camera_distances, view_dependent
            )
            return TextConditioning.from_threestudio(embeddings, elevation.shape[0], weights)
        embeddings = prompt_utils.get_text_embeddings(elevation, azimuth, camera_distances, view_dependent)
        return TextConditioning.from_threestudio(embeddings, elevation.shape[0])

    def __call__(
        self,
        rgb,
        prompt_utils,
        elevation,
        azimuth,
        camera_distances,
        rgb_as_latents: bool = False,
        guidance_eval: bool = False,
        carv_draws=None,
        carv_noise=None,
        carv_k=None,
        **kwargs,
    ) -> dict:
        """SDS loss and diagnostics of rgb [R, H, W, 3]; carv_k: K of this step (None: the config's);
        carv_draws / carv_noise fix (t, eps) (tests, probes)."""
        if rgb_as_latents or guidance_eval:
            raise ValueError(f"{self.__class__.__name__} supports neither rgb_as_latents nor guidance_eval")
        text = self.text_conditioning(prompt_utils, elevation, azimuth, camera_distances)
        return self.distillation(rgb, text, draws=carv_draws, noise=carv_noise, k=carv_k)

    def update_step(self, epoch: int, global_step: int, on_load_weights: bool = False) -> None:
        """threestudio's schedules: C() of grad_clip and of the step range, or HiFA's sqrt anneal."""
        grad_clip = None if self.cfg.grad_clip is None else C(self.cfg.grad_clip, epoch, global_step)
        min_percent = C(self.cfg.min_step_percent, epoch, global_step)
        max_percent = C(self.cfg.max_step_percent, epoch, global_step)
        if self.cfg.sqrt_anneal:
            progress = (float(global_step) / self.cfg.trainer_max_steps) ** 0.5
            start = self.cfg.max_step_percent
            start = start if isinstance(start, (int, float)) else start[1]
            min_percent = max_percent = (start - min_percent) * (1 - progress) + min_percent
        self.distillation.update_schedule(min_percent, max_percent, grad_clip)


@register_once("carv-stable-diffusion-guidance")
class CarvStableDiffusionGuidance(CarvGuidance):
    """stable-diffusion-guidance with the CARV estimator (latent teacher: render and encode amortized)."""

    @dataclass
    class Config(CarvGuidance.Config):
        token_merging: bool = False  # tomesd token merging on the UNet
        token_merging_params: dict | None = field(default_factory=dict)  # tomesd.apply_patch arguments

    cfg: Config

    def load_teacher(self):
        pipe = StableDiffusionPipeline.from_pretrained(
            self.cfg.pretrained_model_name_or_path,
            tokenizer=None,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            torch_dtype=self.weights_dtype,
        ).to(self.device)
        self.apply_pipeline_options(pipe)
        del pipe.text_encoder
        if self.cfg.token_merging:
            import tomesd

            tomesd.apply_patch(pipe.unet, **self.cfg.token_merging_params)
        scheduler = DDIMScheduler.from_pretrained(
            self.cfg.pretrained_model_name_or_path, subfolder="scheduler", torch_dtype=self.weights_dtype
        )
        return teacher_from_modules(pipe.unet, vae=pipe.vae, scheduler=scheduler).to(self.device)


@register_once("carv-deepfloyd-if-guidance")
class CarvDeepFloydGuidance(CarvGuidance):
    """deep-floyd-guidance with the CARV estimator (pixel teacher: only the render is amortized)."""

    @dataclass
    class Config(CarvGuidance.Config):
        pretrained_model_name_or_path: str = "DeepFloyd/IF-I-XL-v1.0"
        enable_channels_last_format: bool = True
        guidance_scale: float = 20.0
        native_resolution: int = 64  # threestudio's IF stage-I size

    cfg: Config

    def load_teacher(self):
        pipe = IFPipeline.from_pretrained(
            self.cfg.pretrained_model_name_or_path,
            text_encoder=None,
            safety_checker=None,
            watermarker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            variant="fp16" if self.cfg.half_precision_weights else None,
            torch_dtype=self.weights_dtype,
        ).to(self.device)
        self.apply_pipeline_options(pipe)
        return teacher_from_modules(pipe.unet, scheduler=pipe.scheduler).to(self.device)
