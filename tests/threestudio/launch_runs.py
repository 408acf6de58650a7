"""threestudio's own launch.py, unchanged, in a subprocess on the CPU: how the launch tests run it and read its runs.

The subprocess gets launch_site/ (the test-only sitecustomize.py with the CPU stand-ins), the threestudio root and
this tree's extension folder (its `carv` package) first on PYTHONPATH; it runs from a temporary folder whose
custom/threestudio-carv links to the extension, as a user's threestudio checkout would (launch.py scans ./custom),
so nothing is written into the threestudio checkout.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio

from .conftest import EXTENSION_DIR, HERE, PROJECT_ROOT

LAUNCH_SITE = HERE / "launch_site"
CONFIGS = PROJECT_ROOT / "configs"
# logged by carv-dreamfusion-system and the carv guidances on every training step
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
# a few seconds of work per run: 32 px, 8 samples per ray (the subprocess's imports cost more than that)
SMALL = [
    "data.width=32",
    "data.height=32",
    "data.eval_width=32",
    "data.eval_height=32",
    "system.renderer.num_samples_per_ray=8",
    "use_timestamp=false",
]
# the CUDA-only parts of the shipped NeRF configs (hash grid, nerfacc occupancy-grid renderer, half precision,
# the spawned prompt processor) replaced by CPU ones; everything else runs as shipped
CPU_STAND_INS = [
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


def make_workdir(folder: Path) -> Path:
    """A folder to run launch.py from: custom/threestudio-carv links to this tree's extension."""
    (folder / "custom").mkdir(parents=True)
    (folder / "custom" / "threestudio-carv").symlink_to(EXTENSION_DIR, target_is_directory=True)
    return folder


def launch_env(threestudio_root: Path, block_imports: str = "") -> dict[str, str]:
    """The subprocess environment: the CPU stand-ins, threestudio and this tree first on the path, offline."""
    paths = [str(LAUNCH_SITE), str(threestudio_root), str(EXTENSION_DIR), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p), HF_HUB_OFFLINE="1")
    env.update(OMP_NUM_THREADS="1", CARV_TEST_BLOCK_IMPORTS=block_imports, PYTHONUNBUFFERED="1")
    return env


def launch_command(threestudio_root: Path, config: Path, mode: str, overrides: list[str], gpus: str = "0") -> list[str]:
    """What a user types: python launch.py --config X --<mode> --gpu 0 key=value... (--gpu 0,1: two CPU ranks)."""
    launch = str(threestudio_root / "launch.py")
    return [sys.executable, launch, "--config", str(config), f"--{mode}", "--gpu", gpus, *overrides]


def run_launch(
    threestudio_root: Path,
    workdir: Path,
    config: Path,
    mode: str,
    overrides: list[str],
    block_imports: str = "",
    gpus: str = "0",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run launch.py and return the finished process (stdout and stderr together in .stdout); env: added variables."""
    return subprocess.run(
        launch_command(threestudio_root, config, mode, overrides, gpus),
        cwd=workdir,
        env={**launch_env(threestudio_root, block_imports), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )


def check_ok(process: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert process.returncode == 0, f"launch.py exited {process.returncode}:\n{process.stdout[-6000:]}"
    return process


def csv_rows(trial_dir: Path) -> list[dict[str, str]]:
    (metrics,) = (trial_dir / "csv_logs").glob("version_*/metrics.csv")
    with open(metrics, newline="") as stream:
        return list(csv.DictReader(stream))


def csv_series(trial_dir: Path, name: str) -> list[tuple[int, float]]:
    """(step, value) of every CSV row that holds `name`."""
    return [(int(row["step"]), float(row[name])) for row in csv_rows(trial_dir) if row.get(name)]


def tensorboard_series(trial_dir: Path, name: str) -> list[tuple[int, float]]:
    """(step, value) of the scalar `name` in the run's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series = []
    for events in sorted((trial_dir / "tb_logs").glob("version_*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if name in accumulator.Tags()["scalars"]:
            series += [(event.step, event.value) for event in accumulator.Scalars(name)]
    return series


def video_frames(video: Path) -> list:
    return imageio.mimread(video, memtest=False)


def assert_complete_train_run(trial_dir: Path, steps: int, test_views: int) -> None:
    """What launch.py --train leaves: last checkpoint, parsed config, a turntable of test_views frames, and every CARV
    diagnostic finite, once per step, in both the CSV and the TensorBoard logs."""
    assert (trial_dir / "ckpts" / "last.ckpt").is_file()
    assert (trial_dir / "configs" / "parsed.yaml").is_file()
    assert len(video_frames(trial_dir / "save" / f"it{steps}-test.mp4")) == test_views
    for name in DIAGNOSTICS:
        for series in (csv_series(trial_dir, name), tensorboard_series(trial_dir, name)):
            assert [step for step, _ in series] == list(range(steps)), name
            assert all(math.isfinite(value) for _, value in series), (name, series)


TOY = CONFIGS / "carv-toy-teacher.yaml"
TOY_STEPS, TOY_VIEWS = 4, 5


def toy_overrides(tag: str, steps: int = TOY_STEPS) -> list[str]:
    """carv-toy-teacher as shipped (geometry, renderer, guidance at R = 1, K = 16), shrunk; max_step annealed."""
    return SMALL + [
        "system.prompt_processor.prompt=a red mug",
        f"data.n_test_views={TOY_VIEWS}",
        f"trainer.max_steps={steps}",
        "system.guidance.max_step_percent=[0,0.98,0.5,3]",
        f"tag={tag}",
    ]


def train_toy_run(threestudio_root: Path, folder: Path) -> tuple[Path, Path]:
    """launch.py --train of carv-toy-teacher in a new working folder: (working folder, run folder)."""
    workdir = make_workdir(folder)
    check_ok(run_launch(threestudio_root, workdir, TOY, "train", toy_overrides("toy")))
    return workdir, workdir / "outputs" / "carv-toy-teacher" / "toy"
