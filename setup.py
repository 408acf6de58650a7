"""threestudio-carv: compute-aware variance reduction for diffusion-teacher gradients."""

from setuptools import find_packages, setup

PACKAGE_ROOT = "custom/threestudio-carv"

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
    extras_require={"dev": ["pytest>=8", "ruff>=0.5"]},
    entry_points={"console_scripts": ["carv=carv.cli:main"]},
)
