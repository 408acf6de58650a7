"""A shrunken CPU run of carv-dreamfusion-system: 10 steps, then the test stage's turntable."""

import csv
import math

import pytest

from .conftest import PROJECT_ROOT

DIAGNOSTICS = (
    "train/loss_sds",
    "train/grad_norm",
    "train/t_mean",
    "train/weight_mean",
    "train/weight_ess",
    "train/direction_norm_mean",
    "train/time_render",
    "train/time_guidance",
    "train/time_backward",
)


def shrunken_toy_config(threestudio, teacher: str, steps: int):
    from threestudio.utils.config import load_config

    overrides = [
        "system.prompt_processor.prompt=a photo of a hamburger",
        f"system.prompt_processor.pretrained_model_name_or_path={teacher}",
        f"system.guidance.pretrained_model_name_or_path={teacher}",
        "system.guidance.noise_samples_per_render=4",
        "system.guidance.max_step_percent=[0,0.98,0.5,10]",
        "system.renderer.num_samples_per_ray=8",
        "data.width=16",
        "data.height=16",
        "data.eval_width=16",
        "data.eval_height=16",
        "data.n_test_views=6",
        f"trainer.max_steps={steps}",
        "trainer.enable_progress_bar=false",
        "use_timestamp=false",
        "tag=smoke",
    ]
    return load_config(str(PROJECT_ROOT / "configs" / "carv-toy-teacher.yaml"), cli_args=overrides, n_gpus=1)


def fit_and_test_on_cpu(threestudio, cfg):
    """launch.py --train, on the CPU: fit, then the test stage that writes the turntable."""
    import os

    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = threestudio.find(cfg.data_type)(cfg.data)
    system = threestudio.find(cfg.system_type)(cfg.system, resumed=False)
    system.set_save_dir(os.path.join(cfg.trial_dir, "save"))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        callbacks=[ModelCheckpoint(dirpath=os.path.join(cfg.trial_dir, "ckpts"), **cfg.checkpoint)],
        logger=[CSVLogger(cfg.trial_dir, name="csv_logs")],
        inference_mode=False,
        **cfg.trainer,
    )
    trainer.fit(system, datamodule=datamodule)
    trainer.test(system, datamodule=datamodule)


def logged_rows(trial_dir) -> list[dict]:
    (metrics,) = (trial_dir / "csv_logs").glob("version_*/metrics.csv")
    with open(metrics, newline="") as stream:
        return list(csv.DictReader(stream))


def test_ten_cpu_steps_then_turntable(threestudio, in_tmp_dir, tiny_teachers):
    cfg = shrunken_toy_config(threestudio, tiny_teachers["sd"], steps=10)
    fit_and_test_on_cpu(threestudio, cfg)
    trial_dir = in_tmp_dir / cfg.trial_dir
    assert (trial_dir / "save" / "it10-test.mp4").stat().st_size > 0
    assert (trial_dir / "ckpts" / "last.ckpt").is_file()
    rows = logged_rows(trial_dir)
    for name in DIAGNOSTICS:
        values = [float(row[name]) for row in rows if row.get(name)]
        assert len(values) == 10, name
        assert all(math.isfinite(value) for value in values), name
    assert all(float(row["train/time_guidance"]) > 0 for row in rows if row.get("train/time_guidance"))
    max_steps = [float(row["train/max_step"]) for row in rows if row.get("train/max_step")]
    assert max_steps[0] == 980 and max_steps[-1] < 600  # update_step reaches the guidance through the timer


CPU_STAND_INS = [  # the CUDA-only parts of the shipped NeRF configs, replaced for a CPU smoke run
    "system.geometry.pos_encoding_config={otype: ProgressiveBandFrequency, n_frequencies: 4}",
    "system.background.dir_encoding_config={otype: ProgressiveBandFrequency, n_frequencies: 2}",
    "system.renderer_type=carv-batched-volume-renderer",
    "system.renderer={radius: 2.0, num_samples_per_ray: 8}",
    "system.prompt_processor_type=stable-diffusion-prompt-processor",
    "system.prompt_processor.spawn=false",
    "system.guidance.half_precision_weights=false",
    "system.guidance.native_resolution=0",
    "trainer.precision=32",
]


@pytest.mark.parametrize("config, teacher", [("carv-dreamfusion-sd", "sd"), ("carv-dreamfusion-if", "if")])
def test_shipped_nerf_config_trains_with_cpu_stand_ins(threestudio, in_tmp_dir, tiny_teachers, config, teacher):
    """The shipped configs' guidance, system and losses run as configured (2 steps, tiny teacher)."""
    from threestudio.utils.config import load_config

    folder = tiny_teachers[teacher]
    overrides = CPU_STAND_INS + [
        "system.prompt_processor.prompt=a photo of a hamburger",
        f"system.prompt_processor.pretrained_model_name_or_path={folder}",
        f"system.guidance.pretrained_model_name_or_path={folder}",
        "data.width=16",
        "data.height=16",
        "data.eval_width=8",
        "data.eval_height=8",
        "data.n_test_views=2",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
    ]
    cfg = load_config(str(PROJECT_ROOT / "configs" / f"{config}.yaml"), cli_args=overrides, n_gpus=1)
    fit_and_test_on_cpu(threestudio, cfg)
    rows = [row for row in logged_rows(in_tmp_dir / cfg.trial_dir) if row.get("train/loss_sds")]
    assert len(rows) == 2 and all(math.isfinite(float(row["train/loss_orient"])) for row in rows)
