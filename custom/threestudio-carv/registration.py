"""Registration that tolerates this extension being imported twice (by path and by name)."""

import inspect
import os

import threestudio


def _definition(cls: type) -> tuple[str, str]:
    """Where a class is defined: its real source file (links resolved) and qualified name."""
    return os.path.realpath(inspect.getsourcefile(cls) or ""), cls.__qualname__


def register_once(name: str):
    """threestudio.register, except that re-importing this extension registers nothing twice.

    A second import (launch.py loads custom/<folder> by path; tests may import it again) finds
    the class defined by the same source and keeps the first one; a different class under the
    same name is still the conflict threestudio reports.
    """

    def decorator(cls: type) -> type:
        existing = threestudio.__modules__.get(name)
        if existing is not None and _definition(existing) == _definition(cls):
            return existing
        return threestudio.register(name)(cls)

    return decorator
