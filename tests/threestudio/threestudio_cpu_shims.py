"""CPU shims for testing threestudio on a machine without CUDA (test-only, never shipped).

threestudio imports CUDA-only and optional libraries at import time and hard-codes a CUDA
device. These shims let its import and its CPU-capable parts run in our integration tests:
- placeholder modules for libraries that are not installed; using any of their attributes
  raises (only `tinycudann.free_temporary_memory`, called by `cleanup()`, is a no-op);
- `get_device()` returning the CPU, patched where threestudio imported it by name.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types

import torch

# CUDA-only or optional libraries (and their submodules) that threestudio imports at module level.
PLACEHOLDER_ROOTS = frozenset({"tinycudann", "nvdiffrast", "envlight", "igl", "wandb", "controlnet_aux", "torchvision"})


class UnavailableAttribute:
    """Stands for an attribute of a placeholder module; calling or using it raises."""

    def __init__(self, qualified_name: str):
        self.qualified_name = qualified_name

    def _fail(self, *args, **kwargs):
        raise RuntimeError(f"{self.qualified_name} is a CPU-test placeholder: its library is not installed")

    __call__ = _fail

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return UnavailableAttribute(f"{self.qualified_name}.{name}")

    def __mro_entries__(self, bases):
        return (object,)


class PlaceholderModule(types.ModuleType):
    """A module whose every public attribute is an UnavailableAttribute."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__path__ = []
        self.__file__ = f"<cpu-test placeholder {name}>"

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return UnavailableAttribute(f"{self.__name__}.{name}")


def cpu_device() -> torch.device:
    """The CPU replacement of threestudio.utils.misc.get_device."""
    return torch.device("cpu")


class PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: serves a PlaceholderModule for a missing PLACEHOLDER_ROOTS module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in PLACEHOLDER_ROOTS:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return PlaceholderModule(spec.name)

    def exec_module(self, module):
        if module.__name__ == "tinycudann":
            module.free_temporary_memory = lambda: None


def install_placeholders() -> None:
    """Serve placeholders for the libraries in PLACEHOLDER_ROOTS that are not installed."""
    import diffusers  # noqa: F401  (import before any torchvision placeholder: they probe for it)
    import transformers  # noqa: F401

    if not any(isinstance(finder, PlaceholderFinder) for finder in sys.meta_path):
        sys.meta_path.append(PlaceholderFinder())


def patch_get_device() -> None:
    """Make threestudio's get_device() return the CPU, also where it was imported by name."""
    import threestudio.utils.misc as misc

    original = misc.get_device
    for module in list(sys.modules.values()):
        if (module.__name__ or "").startswith("threestudio") and getattr(module, "get_device", None) is original:
            module.get_device = cpu_device


def import_threestudio_on_cpu(threestudio_root: str | None):
    """Import threestudio from `threestudio_root` (or the installed one) with the CPU shims."""
    if threestudio_root:
        root = os.path.abspath(threestudio_root)
        if root not in sys.path:
            sys.path.insert(0, root)
    install_placeholders()
    import threestudio

    patch_get_device()
    return threestudio
