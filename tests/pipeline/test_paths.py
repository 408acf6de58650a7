"""configs/ and load/ are found in a source checkout, in an installed wheel's data files, or by variable."""

import runpy
import shutil
import sys
from pathlib import Path

import pytest
import setuptools

import carv.paths
from carv.paths import carv_load, config_dir, load_dir, source_root
from carv.pipeline.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_files_of_setup(monkeypatch) -> list:
    """setup.py's data_files, read by running it with setuptools.setup captured."""
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(PROJECT_ROOT)
    runpy.run_path(str(PROJECT_ROOT / "setup.py"))
    return captured["data_files"]


def install_data_files(data_files, prefix: Path) -> None:
    """What pip does with data_files: each (folder, files) copied under the prefix."""
    for folder, files in data_files:
        (prefix / folder).mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.copy(PROJECT_ROOT / file, prefix / folder)


def test_a_source_checkout_is_found_above_the_package(monkeypatch):
    monkeypatch.delenv("CARV_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CARV_LOAD_DIR", raising=False)
    assert source_root() == PROJECT_ROOT
    assert (config_dir(), load_dir()) == (PROJECT_ROOT / "configs", PROJECT_ROOT / "load")


def test_an_installed_wheel_finds_its_data_files(tmp_path, monkeypatch):
    """Not editable: no checkout above the package; setup.py's data files under sys.prefix/share serve instead."""
    monkeypatch.delenv("CARV_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CARV_LOAD_DIR", raising=False)
    data_files = data_files_of_setup(monkeypatch)
    shipped = {file for _, files in data_files for file in files}
    tracked = {
        p.relative_to(PROJECT_ROOT).as_posix() for top in ("configs", "load") for p in (PROJECT_ROOT / top).rglob("*")
    }
    assert shipped == {f for f in tracked if (PROJECT_ROOT / f).is_file()}
    install_data_files(data_files, tmp_path)
    monkeypatch.setattr(carv.paths, "source_root", lambda start=None: None)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    installed = tmp_path / "share" / "threestudio-carv"
    config = load_config("cpu-carv", prompt="a red mug")
    assert config.system.guidance.pretrained_model_name_or_path == str(installed / "load" / "toy-teacher")
    assert (installed / "load" / "toy-teacher" / "model_index.json").is_file()


def test_variables_come_first_and_nothing_found_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CARV_LOAD_DIR", str(tmp_path))
    assert carv_load("judge") == str(tmp_path / "judge")
    monkeypatch.delenv("CARV_CONFIG_DIR", raising=False)
    monkeypatch.setattr(carv.paths, "source_root", lambda start=None: None)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="CARV_CONFIG_DIR"):
        config_dir()
