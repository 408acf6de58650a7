"""OmegaConf resolver ${carv_load:NAME} for the threestudio configs: the absolute path of NAME in load/.

threestudio runs from its own root, so a relative teacher path in a config would point into
threestudio's checkout; configs name shipped data as ${carv_load:toy-teacher} instead. The rule
(and $CARV_LOAD_DIR to override it) is the CPU pipeline's: carv.paths.

The resolver is registered before anything else of the extension can fail, and imports `carv` only
when a config is resolved: without `carv`, the config stops with what to install, not with
OmegaConf's "Unsupported interpolation type carv_load".
"""

from omegaconf import OmegaConf

CARV_HELP = (
    "install this project into threestudio's environment: pip install -e <path of the threestudio-carv repository>"
)


def carv_load(name: str) -> str:
    try:
        from carv.paths import carv_load as load_path
    except ImportError as error:
        raise ImportError(
            f"threestudio-carv: ${{carv_load:{name}}} needs the `carv` package ({error}); {CARV_HELP}"
        ) from error
    return load_path(name)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("carv_load", carv_load, replace=True)
