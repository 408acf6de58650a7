"""The pipeline's config: typed sections with threestudio's names, YAML files and `key=value` overrides.

Files may start with `extends: OTHER.yaml` (relative to the file) to be a set of overrides of another.
Unknown keys and values of the wrong type raise UserError with one line naming the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..autotune import AutoKOptions, auto_requested, check_auto_options
from ..cameras import AZIMUTH_SAMPLING
from ..paths import carv_load, config_dir
from ..score_distillation import ScoreDistillationConfig
from .errors import UserError

DEFAULT_CONFIG = "cpu-carv"
DENSITY_ACTIVATIONS = ("softplus", "exp")


@dataclass
class DataConfig:
    """Random training cameras and evaluation views (threestudio's random-camera-datamodule names)."""

    batch_size: int = 1  # R: renders per step
    width: int = 32  # training render width in pixels (the guidance resizes to the teacher's size)
    height: int = 32  # training render height
    eval_width: int = 64  # turntable and fidelity render width
    eval_height: int = 64  # turntable and fidelity render height
    elevation_range: list[float] = field(default_factory=lambda: [-10.0, 45.0])  # degrees
    azimuth_range: list[float] = field(default_factory=lambda: [-180.0, 180.0])  # degrees
    camera_distance_range: list[float] = field(default_factory=lambda: [1.5, 2.0])
    fovy_range: list[float] = field(default_factory=lambda: [40.0, 70.0])  # vertical field of view, degrees
    batch_uniform_azimuth: bool = True  # one azimuth per equal slice of the range within a batch
    # threestudio: its draw above; stratified: R equal strata, one uniform offset per step (each camera marginally
    # uniform); golden: those strata rotated by the golden ratio from step to step (carv.cameras.lattice_offset)
    carv_azimuth_sampling: str = "threestudio"
    eval_elevation_deg: float = 15.0  # turntable elevation
    eval_camera_distance: float = 2.0  # turntable distance
    eval_fovy_deg: float = 70.0  # turntable field of view
    n_test_views: int = 120  # turntable frames


@dataclass
class GeometryConfig:
    """Dense voxel grid of density and colour, initialised with Magic3D's density blob."""

    radius: float = 1.0  # the scene is the cube [-radius, radius]^3
    grid_resolution: int = 32  # voxels per side
    density_activation: str = "softplus"  # softplus or exp
    density_blob_scale: float = 10.0  # blob_magic3d: scale * (1 - |x| / std) added to the raw density
    density_blob_std: float = 0.5


@dataclass
class RendererConfig:
    num_samples_per_ray: int = 32  # stratified samples along each ray
    randomized: bool = True  # jitter the samples in training


@dataclass
class MaterialConfig:
    """Diffuse shading under the toy world's light (above and left of each camera), or unshaded albedo."""

    shading: bool = False  # albedo * (ambient + (1 - ambient) max(0, n . l)), normals from the density gradient
    ambient: float = 0.3  # the toy world's ambient term


@dataclass
class BackgroundConfig:
    color: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # solid background (the toy world's white)


@dataclass
class PromptConfig:
    prompt: str = MISSING  # the text
    negative_prompt: str = ""  # encoded as the unconditional embedding
    view_dependent_prompting: bool = True  # append threestudio's ", front view" etc. per render


GuidanceConfig = dataclasses.make_dataclass(
    "GuidanceConfig",
    [
        ("pretrained_model_name_or_path", str, field(default="${carv_load:toy-teacher}")),
        ("min_step_percent", Any, field(default=0.02)),  # a number or threestudio's [start_step, start, end, end_step]
        ("max_step_percent", Any, field(default=0.98)),  # likewise (annealed by global step)
        # `auto` (carv.autotune.AutoKController, options AutoKOptions): K = K* of measured costs and components
        ("noise_samples_per_render", Any, field(default=1)),  # K: (t, eps) draws per render, or "auto"
    ],
    bases=(ScoreDistillationConfig, AutoKOptions),
)
"""ScoreDistillationConfig's and AutoKOptions' options plus the teacher folder (any local diffusers folder); the
timestep range may be scheduled as in threestudio."""


def scheduled(value, step: int) -> float:
    """threestudio's C(): a number, or [start_step, start_value, end_value, end_step] (3 values: start at 0)
    interpolated linearly in the global step and held outside the ramp."""
    if isinstance(value, (int, float)):
        return float(value)
    values = list(value)
    if len(values) == 3:
        values = [0, *values]
    if len(values) != 4:
        raise UserError(
            f"config: a schedule is a number or [start_step, start_value, end_value, end_step], got {values}"
        )
    start_step, start, end, end_step = values
    progress = min(max((step - start_step) / max(end_step - start_step, 1), 0.0), 1.0)
    return float(start + (end - start) * progress)


def schedule_breakpoints(value) -> list[int]:
    """The steps where a schedule of scheduled() bends (none for a number)."""
    if isinstance(value, (int, float)):
        return []
    values = list(value)
    return [0, int(values[-1])] if len(values) == 3 else [int(values[0]), int(values[-1])]


@dataclass
class LossConfig:
    lambda_sds: float = 1.0
    lambda_sparsity: float = 0.0  # mean opacity
    lambda_opaque: float = 0.0  # binary cross-entropy pushing opacity to 0 or 1


@dataclass
class OptimizerArgs:
    lr: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-15


@dataclass
class OptimizerConfig:
    name: str = "Adam"  # only Adam
    colour_lr_scale: float = 1.0  # the colour grid's learning rate is args.lr times this
    args: OptimizerArgs = field(default_factory=OptimizerArgs)


@dataclass
class SystemConfig:
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)
    material: MaterialConfig = field(default_factory=MaterialConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    prompt_processor: PromptConfig = field(default_factory=PromptConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


@dataclass
class EvaluationConfig:
    """Prompt fidelity from the judge: final over n_final_views, and during training for compare."""

    judge: str = "${carv_load:judge}"  # judge folder; empty to skip fidelity
    n_final_views: int = 8  # views around the object for the final fidelity
    every_n_steps: int = 0  # fidelity during training on n_views fixed views (0 = off); not on the clock
    n_views: int = 4


@dataclass
class TrainerConfig:
    max_steps: int = 600
    max_train_seconds: float = 0.0  # stop once training (evaluation excluded) took this long; 0 = off
    log_every_n_steps: int = 1
    enable_progress_bar: bool = True
    accelerator: str = "auto"  # auto (CUDA when present), cpu, gpu
    cpu_threads: int = 1  # torch CPU threads; 0 = torch's default. On a busy 2-core CPU, 2 threads ran 65x slower


@dataclass
class CheckpointConfig:
    """ckpts/last.ckpt is written at the end and rewritten during training (resume=RUN_DIR continues from it)."""

    last_every_seconds: float = 5.0  # rewrite last.ckpt after this much wall-clock since its last save; 0 = off
    last_every_n_steps: int = 0  # and every N steps; 0 = off
    every_n_train_steps: int = 0  # also keep a numbered ckpts/epoch=0-step=N.ckpt every N steps; 0 = none


@dataclass
class RunConfig:
    name: str = DEFAULT_CONFIG  # outputs/<name>/
    tag: str = ""  # the run folder's name before @timestamp; empty = the prompt
    exp_root_dir: str = "outputs"
    seed: int = 0
    resume: str | None = (
        None  # a run folder (its ckpts/last.ckpt) or a checkpoint to continue from, in a new run folder
    )
    extends: str | None = None  # a file may be overrides of another (path relative to the file)
    data: DataConfig = field(default_factory=DataConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


def register_resolvers() -> None:
    """${carv_load:NAME} (carv.paths), as in the threestudio configs."""
    if not OmegaConf.has_resolver("carv_load"):
        register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
        register("carv_load", carv_load)


def config_file(name_or_path: str) -> Path:
    """A YAML path, or the name of one in configs/ (with or without .yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    try:
        folder = config_dir()
    except FileNotFoundError as error:
        raise UserError(f"config {name_or_path!r} is not a file, and {error}") from None
    named = folder / (name_or_path if name_or_path.endswith(".yaml") else f"{name_or_path}.yaml")
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in folder.glob("cpu-*.yaml")))
    raise UserError(f"config {name_or_path!r} is neither a file nor one of configs/: {known}")


def read_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """The file merged over the files it extends."""
    if path.resolve() in seen:
        raise UserError(f"config {path} extends itself through {' -> '.join(map(str, seen))}")
    own = OmegaConf.load(path)
    parent = own.pop("extends", None)
    if parent is None:
        return own
    return OmegaConf.merge(read_yaml_chain(path.parent / parent, (*seen, path.resolve())), own)


def parse_overrides(overrides: list[str]) -> DictConfig:
    """threestudio-style `key=value` overrides (OmegaConf dotlist)."""
    for item in overrides:
        key, equals, _ = item.partition("=")
        if not equals or not key:
            raise UserError(f"override {item!r} is not key=value")
    return OmegaConf.from_dotlist(list(overrides))


def load_config(name_or_path: str = DEFAULT_CONFIG, overrides: list[str] = (), prompt: str | None = None) -> DictConfig:
    """Schema <- YAML chain <- overrides <- the prompt (given apart: it may hold any character), resolved, checked."""
    register_resolvers()
    try:
        config = OmegaConf.structured(RunConfig)
        config = OmegaConf.merge(config, read_yaml_chain(config_file(name_or_path)), parse_overrides(overrides))
        if prompt is not None:
            config.system.prompt_processor.prompt = prompt
        OmegaConf.resolve(config)
    except OmegaConfBaseException as error:
        raise UserError(f"config: {one_line(error)}") from None
    check(config)
    return config


def one_line(error: OmegaConfBaseException) -> str:
    """OmegaConf's message without its multi-line context, plus the key."""
    message = str(getattr(error, "msg", None) or error).splitlines()[0]
    key = getattr(error, "full_key", None)
    return f"{message} (key {key})" if key and str(key) not in message else message


def check(config: DictConfig) -> None:
    """Values the schema's types cannot reject."""
    if (
        OmegaConf.is_missing(config.system.prompt_processor, "prompt")
        or not config.system.prompt_processor.prompt.strip()
    ):
        raise UserError('config: no prompt (give one, e.g. carv text-to-3d "a red mug")')
    rules = [
        (config.data.batch_size >= 1, "data.batch_size (R) must be >= 1"),
        (min(config.data.width, config.data.height) >= 1, "data.width and data.height must be >= 1"),
        (config.data.n_test_views >= 1, "data.n_test_views must be >= 1"),
        (config.trainer.max_steps >= 1, "trainer.max_steps must be >= 1"),
        (
            min(config.checkpoint.last_every_seconds, config.checkpoint.last_every_n_steps) >= 0,
            "checkpoint.last_every_seconds and checkpoint.last_every_n_steps must be >= 0 (0 = off)",
        ),
        (config.system.geometry.grid_resolution >= 2, "system.geometry.grid_resolution must be >= 2"),
        (config.system.renderer.num_samples_per_ray >= 1, "system.renderer.num_samples_per_ray must be >= 1"),
        (config.system.optimizer.name == "Adam", "system.optimizer.name must be Adam"),
        (config.evaluation.n_final_views >= 1, "evaluation.n_final_views must be >= 1"),
        (
            config.system.geometry.density_activation in DENSITY_ACTIVATIONS,
            f"system.geometry.density_activation must be one of {', '.join(DENSITY_ACTIVATIONS)}",
        ),
    ]
    g = config.system.guidance
    k = g.noise_samples_per_render
    rules.append(
        (
            auto_requested(k) or (isinstance(k, int) and k >= 1),
            "system.guidance.noise_samples_per_render must be >= 1 or auto",
        )
    )
    if auto_requested(k):
        try:
            check_auto_options(g, g.timestep_strata)
        except ValueError as error:
            rules.append((False, f"system.guidance: {error}"))
    rules.append(
        (
            config.data.carv_azimuth_sampling in AZIMUTH_SAMPLING,
            f"data.carv_azimuth_sampling must be one of {', '.join(AZIMUTH_SAMPLING)}",
        )
    )
    for name in ("elevation_range", "azimuth_range", "camera_distance_range", "fovy_range"):
        values = config.data[name]
        rules.append((len(values) == 2 and values[0] <= values[1], f"data.{name} must be [low, high]"))
    for ok, message in rules:
        if not ok:
            raise UserError(f"config: {message}")


def guidance_options(config: DictConfig) -> ScoreDistillationConfig:
    """The ScoreDistillationConfig part of system.guidance, schedules at step 0."""
    names = [f.name for f in dataclasses.fields(ScoreDistillationConfig)]
    options = {name: config.system.guidance[name] for name in names}
    for name in ("min_step_percent", "max_step_percent"):
        options[name] = scheduled(options[name], 0)
    if auto_requested(options["noise_samples_per_render"]):
        options["noise_samples_per_render"] = config.system.guidance.auto_k_initial
    return ScoreDistillationConfig(**options)


def auto_k_options(config: DictConfig) -> AutoKOptions | None:
    """system.guidance's AutoKOptions when K is `auto`, else None."""
    g = config.system.guidance
    if not auto_requested(g.noise_samples_per_render):
        return None
    return AutoKOptions(**{f.name: g[f.name] for f in dataclasses.fields(AutoKOptions)})
