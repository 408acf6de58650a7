"""CPU shims for testing threestudio on a machine without CUDA (test-only, never shipped).

threestudio imports CUDA-only and optional libraries at import time and hard-codes a CUDA
device. These shims let its import and its CPU-capable parts run in our integration tests:
- placeholder modules for libraries that are not installed; using any of their attributes
  raises (only `tinycudann.free_temporary_memory`, called by `cleanup()`, is a no-op);
- `get_device()` returning the CPU, patched where threestudio imported it by name;
- for threestudio's own launch.py in a subprocess (launch_site/sitecustomize.py): the same, installed by
  import hooks as the modules are first executed, and Lightning's `accelerator="gpu"` (hard-coded by
  launch.py) mapped to the CPU.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

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


def cpu_device():
    """The CPU replacement of threestudio.utils.misc.get_device."""
    import torch

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


class ImportHooks(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: runs `before[name]()` before a module is imported and `after[name](module)` once it
    has executed, each once; the module itself is found and loaded by the other finders, unchanged."""

    def __init__(self, before=None, after=None):
        self.before, self.after = dict(before or {}), dict(after or {})

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.before:
            self.before.pop(fullname)()
        hook = self.after.pop(fullname, None)
        if hook is None:
            return None
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = HookedLoader(spec.loader, hook)
        return spec


class HookedLoader(importlib.abc.Loader):
    """A module's own loader, then hook(module)."""

    def __init__(self, loader, hook):
        self.loader, self.hook = loader, hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.hook(module)


class BlockedImports(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: importing one of `roots` (or a submodule) fails as if it were not installed."""

    def __init__(self, roots):
        self.roots = frozenset(roots)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.roots:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked by the CPU test shims)", name=fullname)
        return None


def use_cpu_device(misc_module) -> None:
    """After threestudio.utils.misc executes: its get_device() returns the CPU for every later importer."""
    misc_module.get_device = cpu_device


def selected_gpus() -> int:
    """How many GPUs launch.py selected: it sets CUDA_VISIBLE_DEVICES from --gpu before importing Lightning."""
    return len([gpu for gpu in os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",") if gpu.strip()]) or 1


def map_gpu_accelerator_to_cpu(trainer_module) -> None:
    """After pytorch_lightning.trainer.trainer executes: Trainer(accelerator="gpu", devices=N) runs on CPU processes,
    one per GPU that launch.py selected (`--gpu 0,1`: two gloo ranks under Lightning's DDP)."""
    trainer_class = trainer_module.Trainer
    original_init = trainer_class.__init__

    @functools.wraps(original_init)
    def init_on_cpu(self, *args, **kwargs):
        if kwargs.get("accelerator") in ("gpu", "cuda"):
            kwargs.update(accelerator="cpu", devices=selected_gpus())
        original_init(self, *args, **kwargs)

    trainer_class.__init__ = init_on_cpu
    if os.environ.get("CARV_TEST_RANK_STATE"):
        write_rank_state_after_fit(trainer_class, os.environ["CARV_TEST_RANK_STATE"])


def write_rank_state_after_fit(trainer_class, folder: str) -> None:
    """Trainer.fit, then each rank writes <folder>/rank<i>.pt: its CARV proposal pmf and auto's K history."""
    original_fit = trainer_class.fit

    @functools.wraps(original_fit)
    def fit_and_write(self, model, *args, **kwargs):
        result = original_fit(self, model, *args, **kwargs)
        import torch

        auto = getattr(model, "carv_auto", None)
        state = {
            "pmf": model.guidance.distillation.sampler.proposal_pmf(),
            "k": None if auto is None else [entry["k"] for entry in auto.history],
        }
        torch.save(state, os.path.join(folder, f"rank{self.global_rank}.pt"))
        return result

    trainer_class.fit = fit_and_write


def install_launch_hooks(blocked=()) -> None:
    """The subprocess side (sitecustomize): placeholders before threestudio is imported, a CPU get_device, a CPU
    Trainer; `blocked` modules fail to import (to test what a user without them sees)."""
    if blocked:
        sys.meta_path.insert(0, BlockedImports(blocked))
    hooks = ImportHooks(
        before={"threestudio": install_placeholders},
        after={
            "threestudio.utils.misc": use_cpu_device,
            "pytorch_lightning.trainer.trainer": map_gpu_accelerator_to_cpu,
        },
    )
    sys.meta_path.insert(0, hooks)
