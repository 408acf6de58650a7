from pathlib import Path

import pytest
from omegaconf import OmegaConf

from carv.pipeline.config import load_config
from carv.pipeline.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_baseline_is_carv_with_threestudio_sampling():
    carv = OmegaConf.to_container(load_config("cpu-carv", prompt="a red mug"))
    baseline = OmegaConf.to_container(load_config("cpu-baseline", prompt="a red mug"))
    assert baseline["data"]["batch_size"] == 4
    guidance = baseline["system"]["guidance"]
    assert (guidance["noise_samples_per_render"], guidance["timestep_proposal"], guidance["timestep_stratified"]) == (
        1,
        "uniform",
        False,
    )
    for config in (carv, baseline):
        config.pop("name")
        config["data"].pop("batch_size")
        for key in ("noise_samples_per_render", "timestep_proposal", "timestep_stratified"):
            config["system"]["guidance"].pop(key)
    assert carv == baseline


def test_default_teacher_is_the_projects_wherever_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARV_LOAD_DIR", raising=False)
    config = load_config(prompt="a red mug")
    assert config.system.guidance.pretrained_model_name_or_path == str(PROJECT_ROOT / "load" / "toy-teacher")
    assert config.evaluation.judge == str(PROJECT_ROOT / "load" / "judge")


def test_overrides_reach_the_config():
    config = load_config(overrides=["data.batch_size=2", "system.guidance.noise_samples_per_render=5"], prompt="x")
    assert (config.data.batch_size, config.system.guidance.noise_samples_per_render) == (2, 5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["system.guidance.no_such_option=1"], "system.guidance.no_such_option"),
        (["data.batch_size=many"], "data.batch_size"),
        (["data.batch_size=0"], "data.batch_size"),
        (["data.elevation_range=[50,10]"], "data.elevation_range"),
        (["trainer.max_steps"], "key=value"),
        (["=100"], "key=value"),
        (["system.geometry.density_activation=relu"], "density_activation"),
        (["data.carv_azimuth_sampling=sobol"], "data.carv_azimuth_sampling must be one of threestudio"),
    ],
)
def test_bad_keys_and_values_are_one_line_user_errors(overrides, message):
    with pytest.raises(UserError) as error:
        load_config(overrides=overrides, prompt="a red mug")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_prompt_and_unknown_config_file_are_user_errors():
    with pytest.raises(UserError, match="no prompt"):
        load_config()
    with pytest.raises(UserError, match="cpu-carv"):
        load_config("no-such-config", prompt="a red mug")


def test_timestep_range_schedules_follow_threestudio():
    from carv.pipeline.config import scheduled

    assert scheduled(0.5, 100) == 0.5
    assert [scheduled([100, 0.98, 0.5, 300], s) for s in (0, 100, 200, 300, 400)] == [0.98, 0.98, 0.74, 0.5, 0.5]
    assert scheduled([0.9, 0.1, 10], 5) == 0.5
    config = load_config(overrides=["system.guidance.max_step_percent=[0,0.98,0.5,100]"], prompt="a red mug")
    assert list(config.system.guidance.max_step_percent) == [0, 0.98, 0.5, 100]


@pytest.mark.parametrize(("name", "base"), [("cpu-carv-golden", "cpu-carv"), ("cpu-baseline-golden", "cpu-baseline")])
def test_golden_camera_configs_are_their_base_with_golden_azimuths(name, base):
    golden = OmegaConf.to_container(load_config(name, prompt="a red mug"))
    plain = OmegaConf.to_container(load_config(base, prompt="a red mug"))
    assert golden["data"].pop("carv_azimuth_sampling") == "golden"
    assert plain["data"].pop("carv_azimuth_sampling") == "threestudio"
    assert golden.pop("name") == name and plain.pop("name") == base
    assert golden == plain
