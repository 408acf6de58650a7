"""The extension registers each class once, also when imported twice, and fails loudly."""

import sys

import pytest

from .conftest import EXTENSION_DIR, load_extension

REGISTERED = (
    "carv-stable-diffusion-guidance",
    "carv-deepfloyd-if-guidance",
    "carv-dreamfusion-system",
    "carv-magic3d-system",
    "carv-batched-volume-renderer",
    "carv-random-camera-datamodule",
)


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registry_name_resolves(threestudio, name):
    assert threestudio.find(name).__name__.startswith("Carv")


def test_importing_the_extension_again_registers_nothing_twice(threestudio):
    before = dict(threestudio.__modules__)
    load_extension("threestudio_carv_imported_again")
    assert threestudio.__modules__ == before


def test_importing_it_through_a_link_registers_nothing_twice(threestudio, tmp_path):
    link = tmp_path / "custom" / "threestudio-carv"
    link.parent.mkdir()
    link.symlink_to(EXTENSION_DIR)
    before = dict(threestudio.__modules__)
    load_extension("threestudio_carv_linked", link)
    assert threestudio.__modules__ == before


def test_a_different_class_under_a_taken_name_still_conflicts(threestudio):
    from importlib import import_module

    registration = import_module("threestudio-carv.registration")

    with pytest.raises(ValueError, match="already exists"):

        @registration.register_once("carv-stable-diffusion-guidance")
        class Impostor:
            pass


def test_unsupported_threestudio_version_fails_loudly(threestudio, monkeypatch, capsys):
    monkeypatch.setattr(threestudio, "__version__", "0.3.0")
    with pytest.raises(ImportError, match="threestudio 0.3.0 is not supported"):
        load_extension("threestudio_carv_wrong_version")
    assert "threestudio-carv cannot load" in capsys.readouterr().err


def test_missing_carv_package_says_what_to_install(threestudio, monkeypatch):
    monkeypatch.setitem(sys.modules, "carv", None)
    with pytest.raises(ImportError, match="pip install -e"):
        load_extension("threestudio_carv_without_carv")


def test_missing_dependency_fails_loudly(threestudio, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ImportError, match="a dependency is missing"):
        load_extension("threestudio_carv_without_diffusers")
    assert "threestudio-carv cannot load" in capsys.readouterr().err
