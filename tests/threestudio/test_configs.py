"""Every shipped config, and each of its variants, loads through threestudio's loader and parses."""

import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from .conftest import PROJECT_ROOT

# threestudio configs are those naming a system_type (the CPU pipeline's configs do not)
CONFIGS = sorted(p for p in (PROJECT_ROOT / "configs").glob("*.yaml") if "system_type" in OmegaConf.load(p))
VARIANTS = OmegaConf.to_container(OmegaConf.load(PROJECT_ROOT / "configs" / "variants.yaml"))
PARTS = ("geometry", "material", "background", "renderer", "guidance", "prompt_processor")
REQUIRED = ["system.prompt_processor.prompt=a hamburger", "system.geometry_convert_from=coarse.ckpt"]


def load(threestudio, config: Path, overrides: list[str]):
    from threestudio.utils.config import load_config

    return load_config(str(config), cli_args=REQUIRED + overrides, n_gpus=1)


def parse_parts(threestudio, cfg) -> None:
    """Parse the data module (by building it), the system config and each sub-config with the Config of the class
    it names."""
    from threestudio.utils.config import parse_structured

    threestudio.find(cfg.data_type)(cfg.data)
    system_cfg = parse_structured(threestudio.find(cfg.system_type).Config, cfg.system)
    for part in PARTS:
        parse_structured(threestudio.find(system_cfg[f"{part}_type"]).Config, system_cfg[part])


def test_the_configs_are_found():
    assert {p.name for p in CONFIGS} >= {"carv-dreamfusion-sd.yaml", "carv-toy-teacher.yaml"}
    assert set(VARIANTS) == {"carv", "baseline", "threestudio", "carv-golden-cameras", "baseline-golden-cameras"}


def test_camera_variants_are_their_base_with_golden_cameras(threestudio, in_tmp_dir):
    config = PROJECT_ROOT / "configs" / "carv-toy-teacher.yaml"
    for base in ("carv", "baseline"):
        cfg = load(threestudio, config, VARIANTS[f"{base}-golden-cameras"])
        assert sampling(cfg) == sampling(load(threestudio, config, VARIANTS[base]))
        assert (cfg.data_type, cfg.data.carv_azimuth_sampling) == ("carv-random-camera-datamodule", "golden")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_and_variant_load_and_parse(threestudio, in_tmp_dir, config, variant):
    cfg = load(threestudio, config, VARIANTS[variant])
    parse_parts(threestudio, cfg)
    assert cfg.system.guidance_type.startswith("carv-")
    assert cfg.system_type.startswith("carv-")


def sampling(cfg) -> tuple:
    """(R, K, proposal, stratified) of a config."""
    guidance = cfg.system.guidance
    k = guidance.get("noise_samples_per_render", 1)  # threestudio's own guidance has no K: one draw per render
    return (
        cfg.data.batch_size,
        k,
        guidance.get("timestep_proposal", "uniform"),
        guidance.get("timestep_stratified", False),
    )


def test_baseline_variant_is_threestudios_sds_at_equal_cost(threestudio, in_tmp_dir):
    cfg = load(threestudio, PROJECT_ROOT / "configs" / "carv-dreamfusion-sd.yaml", VARIANTS["baseline"])
    assert sampling(cfg) == (4, 1, "uniform", False)


def test_threestudio_variant_is_threestudios_dreamfusion_sd_as_shipped(threestudio, in_tmp_dir):
    from threestudio.utils.config import load_config

    ours = load(threestudio, PROJECT_ROOT / "configs" / "carv-dreamfusion-sd.yaml", VARIANTS["threestudio"])
    shipped_yaml = Path(threestudio.__file__).parents[1] / "configs" / "dreamfusion-sd.yaml"
    shipped = load_config(str(shipped_yaml), cli_args=REQUIRED[:1], n_gpus=1)
    assert sampling(ours) == sampling(shipped) == (1, 1, "uniform", False)
    assert ours.system.guidance.pretrained_model_name_or_path == shipped.system.guidance.pretrained_model_name_or_path


def test_the_toy_races_sides_train_on_the_same_cameras(threestudio, in_tmp_dir):
    config = PROJECT_ROOT / "configs" / "carv-toy-teacher.yaml"
    sides = [load(threestudio, config, VARIANTS[side]) for side in ("carv", "baseline")]
    data = [OmegaConf.to_container(OmegaConf.structured(threestudio.find(c.data_type)(c.data).cfg)) for c in sides]
    assert [d.pop("batch_size") for d in data] == [1, 4]
    assert data[0] == data[1]  # the camera distribution (perturbations too) is a shared setting of the race


def test_toy_teacher_path_points_into_the_project(threestudio, in_tmp_dir):
    cfg = load(threestudio, PROJECT_ROOT / "configs" / "carv-toy-teacher.yaml", [])
    assert Path(cfg.system.guidance.pretrained_model_name_or_path) == PROJECT_ROOT / "load" / "toy-teacher"
    assert (
        cfg.system.prompt_processor.pretrained_model_name_or_path == cfg.system.guidance.pretrained_model_name_or_path
    )


@pytest.mark.parametrize("part", ["guidance", "renderer"])
def test_unknown_keys_fail(threestudio, in_tmp_dir, part):
    from threestudio.utils.config import parse_structured

    cfg = load(threestudio, PROJECT_ROOT / "configs" / "carv-toy-teacher.yaml", [f"system.{part}.no_such_option=1"])
    with pytest.raises(Exception, match="no_such_option"):
        parse_structured(threestudio.find(cfg.system[f"{part}_type"]).Config, cfg.system[part])


def test_auto_k_is_off_by_default(threestudio, in_tmp_dir):
    from threestudio.utils.config import parse_structured

    cfg = load(threestudio, PROJECT_ROOT / "configs" / "carv-toy-teacher.yaml", [])
    for name in ("carv-dreamfusion-system", "carv-magic3d-system"):
        system = parse_structured(threestudio.find(name).Config, cfg.system)
        assert system.guidance.noise_samples_per_render != "auto"


def readme_launch_commands() -> list[list[str]]:
    """The `python launch.py ...` commands of the README's "For threestudio users" block, as argument lists."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text[text.index("## For threestudio users") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```", section.index("```bash") + 7)]
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.startswith("python launch.py")]


README_COMMANDS = readme_launch_commands()


def test_the_readme_shows_carv_baseline_and_smoke_test_commands():
    assert len(README_COMMANDS) == 3
    overrides = [command[7:] for command in README_COMMANDS]
    assert ["system.prompt_processor.prompt=a hamburger", *VARIANTS["baseline"]] in overrides


@pytest.mark.parametrize("command", README_COMMANDS, ids=lambda c: Path(c[c.index("--config") + 1]).stem)
def test_readme_launch_commands_load_and_parse(threestudio, in_tmp_dir, command):
    """What a user types: each command's config (this project's, by its README path) and overrides load through
    threestudio's loader and parse with the classes they name."""
    from threestudio.utils.config import load_config

    assert command[:3] == ["python", "launch.py", "--config"] and command[4:7] == ["--train", "--gpu", "0"]
    config = Path(command[3].replace("/path/to/threestudio-carv", str(PROJECT_ROOT)))
    cfg = load_config(str(config), cli_args=command[7:], n_gpus=1)
    parse_parts(threestudio, cfg)
