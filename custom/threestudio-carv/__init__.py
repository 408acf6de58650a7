"""threestudio-carv: the threestudio extension of CARV (guidance, system, CPU volume renderer, camera data module).

threestudio's launch.py imports this folder from custom/ and only prints an import error,
and goes on: a config naming shipped data then stops in its ${carv_load:...} resolver (registered
first, so that it can say what to install), any other at a KeyError in threestudio.find. So every
missing requirement is reported here with a banner that says what to install.
"""

import sys

from .resolvers import CARV_HELP, register_resolvers

register_resolvers()

SUPPORTED_THREESTUDIO = "0.2."
THREESTUDIO_HELP = (
    "install threestudio 0.2.x from github.com/threestudio-project/threestudio as its README says, "
    "put this folder in its custom/ directory (or link it there) and run launch.py from threestudio's root"
)


def _fail(message: str, cause: BaseException | None = None):
    banner = "=" * 78
    later = "(threestudio goes on: its next error, a carv_load interpolation or a KeyError for a carv-* name, has this cause)"
    print(f"\n{banner}\nthreestudio-carv cannot load: {message}\n{later}\n{banner}\n", file=sys.stderr)
    raise ImportError(f"threestudio-carv: {message}") from cause


def _check_threestudio() -> None:
    try:
        import threestudio
    except ImportError as error:
        _fail(f"threestudio is not importable ({error}); {THREESTUDIO_HELP}", error)
    version = getattr(threestudio, "__version__", "unknown")
    if not version.startswith(SUPPORTED_THREESTUDIO):
        _fail(f"threestudio {version} is not supported (need {SUPPORTED_THREESTUDIO}x); {THREESTUDIO_HELP}")


def _check_carv() -> None:
    try:
        import carv  # noqa: F401
    except ImportError as error:
        _fail(f"the `carv` package is not importable ({error}); {CARV_HELP}", error)


_check_threestudio()
_check_carv()

try:
    from . import datamodule, guidance, renderer, system  # noqa: F401  (registers the classes)
except ImportError as missing:
    _fail(f"a dependency is missing ({missing}); install threestudio's requirements, then {CARV_HELP}", missing)
