"""threestudio-carv: compute-aware variance reduction for diffusion-teacher gradients."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE_ROOT = "custom/threestudio-carv"
SHIPPED = ("configs", "load")
DATA_FOLDER = "share/threestudio-carv"  # carv.paths.installed_root() looks here in an installed wheel


def shipped_data_files() -> list[tuple[str, list[str]]]:
    """configs/ and load/ (every file, folders kept) as data files under <prefix>/share/threestudio-carv/."""
    files: dict[str, list[str]] = {}
    for top in SHIPPED:
        for path in sorted(Path(top).rglob("*")):
            if path.is_file():
                files.setdefault(f"{DATA_FOLDER}/{path.parent.as_posix()}", []).append(path.as_posix())
    return sorted(files.items())


setup(
    name="threestudio-carv",
    version="0.1.0",
    description=(
        "CARV: render once, re-noise K times, importance-sampled and stratified "
        "timesteps, and compute-aware variance accounting for score distillation."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    package_dir={"": PACKAGE_ROOT},
    packages=find_packages(PACKAGE_ROOT),
    include_package_data=True,
    data_files=shipped_data_files(),
    install_requires=[
        "torch>=2.1",
        "numpy",
        "tqdm",
        "diffusers>=0.30",
        "transformers>=4.40",
        "safetensors",
        "accelerate",
        "pytorch-lightning>=2.0",
        "omegaconf>=2.3",
        "nerfacc>=0.5.3",
        "imageio>=2.30",
        "imageio-ffmpeg",
        "matplotlib",
        "traker",  # TRAK's random projector (carv.attribution.projection)
    ],
    extras_require={
        "dev": ["pytest>=8", "ruff>=0.5"],
        # threestudio's pure-Python requirements that its import and launch.py need, for tests/threestudio/
        # (threestudio itself is on no registry: point THREESTUDIO_ROOT at a checkout)
        "threestudio-test": [
            "jaxtyping",
            "typeguard",
            "opencv-python-headless",
            "trimesh",
            "einops",
            "PyMCubes",
            "ipython",
            "tensorboard",
        ],
    },
    entry_points={"console_scripts": ["carv=carv.cli:main"]},
)
