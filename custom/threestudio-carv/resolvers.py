"""OmegaConf resolver ${carv_load:NAME} for the threestudio configs: the absolute path of NAME in load/.

threestudio runs from its own root, so a relative teacher path in a config would point into
threestudio's checkout; configs name shipped data as ${carv_load:toy-teacher} instead. The rule
(and $CARV_LOAD_DIR to override it) is the CPU pipeline's: carv.paths.
"""

from omegaconf import OmegaConf

from carv.paths import carv_load


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("carv_load", carv_load, replace=True)
