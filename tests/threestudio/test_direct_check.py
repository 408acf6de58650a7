"""The direct check of a threestudio run (custom/threestudio-carv/direct_check.py, scripts/variance_threestudio.py) on
the session's launch.py toy run (4 steps; max_step_percent annealed 0.98 -> 0.5 by step 3, so the checkpoint's
schedule differs from the config's start)."""

import importlib
import importlib.util
import json
import math
import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from carv.stratified_variance import repeated_variance

from .conftest import PROJECT_ROOT, THREESTUDIO_ROOT
from .launch_runs import launch_env

SCRIPT = PROJECT_ROOT / "scripts" / "variance_threestudio.py"
Z99 = 2.5758  # one-sided tests below use it as a conservative bound


@pytest.fixture(scope="module")
def direct(threestudio):
    return importlib.import_module("threestudio-carv.direct_check")


def toy_config(trial: Path, **loss):
    cfg = OmegaConf.load(trial / "configs" / "parsed.yaml")
    cfg.system.loss.update(loss)
    return cfg


def threestudio_step_gradient(threestudio, check, configuration, seed: int) -> torch.Tensor:
    """The flat parameter gradient of threestudio's own DreamFusion.training_step loss, after Lightning's
    on_train_batch_start update, with the guidance on_fit_start builds from the config at this K and proposal."""
    system, cfg = check.system, check.cfg
    options = {
        "noise_samples_per_render": configuration.k,
        "timestep_proposal": configuration.proposal,
        "timestep_stratified": configuration.stratified,
    }
    system.guidance = threestudio.find(cfg.system.guidance_type)(OmegaConf.merge(cfg.system.guidance, options))
    system.do_update_step(check.epoch, check.step)
    torch.manual_seed(seed)
    random.seed(seed)  # threestudio's camera batch draws its elevation rule from Python's generator
    check.dataset.batch_size = configuration.renders
    batch = check.dataset.collate(None)
    system.zero_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer
        system.training_step(batch, 0)["loss"].backward()
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in check.parameters]
    ).detach()


@pytest.mark.parametrize("values", [(2, 4, "sds", True), (3, 2, "uniform", False)])
def test_a_repetition_is_the_gradient_of_threestudios_training_step(threestudio, direct, toy_run, in_tmp_dir, values):
    _, trial = toy_run
    # lambda_sds 0.5: the check must scale as the step does; no sparsity term: the check is the SDS part only
    cfg = toy_config(trial, lambda_sds=0.5, lambda_sparsity=0.0)
    check = direct.DirectCheck(cfg, trial / "ckpts" / "last.ckpt")
    configuration = direct.Configuration(*values)
    ours, seconds = check.step_gradient(configuration, seed=1234)
    theirs = threestudio_step_gradient(threestudio, check, configuration, seed=1234)
    assert check.step == 4 and seconds > 0
    assert ours.abs().sum() > 0
    assert torch.equal(ours, theirs)
    again, _ = check.step_gradient(configuration, seed=1235)  # another seed: other cameras and draws
    assert not torch.equal(again, ours)


def test_four_draws_at_one_render_measure_a_quarter_of_one_draws_variance(direct, toy_run, in_tmp_dir):
    """At a fixed render (cameras and ray jitter of one seed), K IID uniform draws: Var(K = 4) = Var(K = 1) / 4.
    The measured ratio agrees with 4 within 2.58 delta-method standard errors of its log, and K = 4 lies below
    K = 1 by more than 2.58 of their standard errors."""
    _, trial = toy_run
    cfg = toy_config(trial)
    cfg.data.update(width=16, height=16)  # a quarter of the rays: only the draws vary here
    check = direct.DirectCheck(cfg, trial / "ckpts" / "last.ckpt")
    measured = {}
    for k, repeats in ((1, 96), (4, 24)):  # one draw's gradient is heavy-tailed (w(t) / q(t) times eps_hat - eps)
        configuration = direct.Configuration(1, k, "uniform", False)
        steps = [check.step_gradient(configuration, seed=7, draw_seed=1000 * k + i)[0] for i in range(repeats)]
        measured[k] = repeated_variance(torch.stack(steps))
    (v1, se1), (v4, se4) = measured[1], measured[4]
    assert v1 - v4 > Z99 * math.hypot(se1, se4), measured
    assert abs(math.log(v1 / v4 / 4)) < Z99 * math.hypot(se1 / v1, se4 / v4), measured


def test_threestudios_batches_of_three_cameras_are_flagged_as_skewed(direct, toy_run, in_tmp_dir):
    """threestudio 0.2.3's collate crosses along the first axis of size 3: at R = 3 the batch axis."""
    _, trial = toy_run
    check = direct.DirectCheck(toy_config(trial), trial / "ckpts" / "last.ckpt")
    assert [direct.cameras_orthonormal(check.batch(r)) for r in (1, 2, 3, 4)] == [True, True, False, True]
    assert check.skewed_batches == {3: 1}
    results = direct.measure(
        check, {"baseline": direct.BASELINE, "r3": direct.Configuration(3, 1, "uniform", False)}, 3, 0
    )
    assert results["baseline"]["cameras_orthonormal"] and not results["r3"]["cameras_orthonormal"]


def script_main():
    spec = importlib.util.spec_from_file_location("variance_threestudio_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def threestudio_root() -> str:
    return THREESTUDIO_ROOT or str(Path(sys.modules["threestudio"].__file__).parents[1])


def test_the_script_writes_every_configuration_with_the_baseline_at_ecm_one(threestudio, toy_run, tmp_path):
    _, trial = toy_run
    out = tmp_path / "check.json"
    extra = ["--configuration", "2", "2", "sds", "strat"]
    command = [sys.executable, str(SCRIPT), str(trial), "--threestudio-root", threestudio_root(), "--repeats", "3"]
    process = subprocess.run(
        [*command, *extra, "--out", str(out)],
        cwd=tmp_path,
        env=launch_env(Path(threestudio_root())),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stdout[-4000:]
    report = json.loads(out.read_text())
    results = report["configurations"]
    assert list(results) == ["run", "baseline", "reuse_only", "extra R2 K2 sds+strat"]
    fields = {"R", "K", "proposal", "stratified", "measured", "measured_se", "seconds", "ecm", "ecm_se", "name"}
    fields.add("cameras_orthonormal")
    assert all(set(r) == fields for r in results.values())
    shape = {role: (r["R"], r["K"], r["proposal"], r["stratified"]) for role, r in results.items()}
    assert shape["run"] == (1, 16, "sds", True)  # carv-toy-teacher as the run trained it
    assert shape["baseline"] == (4, 1, "uniform", False)
    assert shape["reuse_only"] == (1, 16, "uniform", False)
    assert (results["baseline"]["ecm"], results["baseline"]["ecm_se"]) == (1.0, 0.0)
    assert all(r["cameras_orthonormal"] for r in results.values())
    for r in results.values():
        assert r["measured"] > 0 and r["measured_se"] > 0 and r["seconds"] > 0
        expected = results["baseline"]["measured"] * results["baseline"]["seconds"] / (r["measured"] * r["seconds"])
        assert r["ecm"] == pytest.approx(expected, rel=1e-12)
    assert report["step"] == 4 and report["repeats"] == 3
    assert "reuse_only" in process.stdout and str(out) in process.stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--repeats", "2"], "--repeats >= 3"),
        (["--threads", "-1"], "--threads >= 0"),
        (["--configuration", "2", "x", "sds", "iid"], "--configuration R K PROPOSAL"),
        (["--configuration", "2", "0", "sds", "iid"], "K >= 1"),
        (["--configuration", "2", "2", "nonsense", "iid"], "unknown timestep proposal"),
        (["--out", "{existing}"], "exists"),
        (["--threestudio-root", "{tmp}"], "--threestudio-root"),
        (["data.center_perturb"], "key=value"),
        (["data.center_pertub=0"], "does not build: TypeError"),
        (["system.geometry_type=no-such-geometry"], "does not build: KeyError"),
        (["data.elevation_range=abc"], "does not build: ValidationError"),
    ],
)
def test_bad_input_exits_2_with_one_line(threestudio, toy_run, tmp_path, capsys, monkeypatch, arguments, message):
    _, trial = toy_run
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "taken.json"
    existing.write_text("{}")
    arguments = [a.format(existing=existing, tmp=tmp_path) for a in arguments]
    code = script_main()([str(trial), "--threestudio-root", threestudio_root(), *arguments])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(error) == 1 and message in error[0], error
    assert existing.read_text() == "{}"


def test_a_guidance_that_does_not_build_is_one_error_line_after_the_prompt_processors_output(
    threestudio, toy_run, tmp_path, capsys, monkeypatch
):
    _, trial = toy_run
    monkeypatch.chdir(tmp_path)
    arguments = [str(trial), "--threestudio-root", threestudio_root(), "system.guidance_type=stable-diffusion-guidance"]
    code = script_main()(arguments)
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "does not build: TypeError" in error[-1] and not any("Traceback" in line for line in error), error


def test_config_changes_reach_the_check_and_the_report(threestudio, toy_run, tmp_path, monkeypatch):
    _, trial = toy_run
    monkeypatch.chdir(tmp_path)
    changes = ["data.batch_size=2", "system.guidance.noise_samples_per_render=2", "data.center_perturb=0"]
    arguments = [str(trial), changes[0], "--threestudio-root", threestudio_root(), "--repeats", "3", *changes[1:]]
    assert script_main()([*arguments, "--out", "changed.json"]) == 0
    report = json.loads((tmp_path / "changed.json").read_text())
    run = report["configurations"]["run"]
    assert (run["R"], run["K"]) == (2, 2)  # the run trained R = 1, K = 16
    assert report["overrides"] == changes


def test_a_folder_that_is_not_a_run_exits_2(threestudio, tmp_path, capsys):
    code = script_main()([str(tmp_path), "--threestudio-root", threestudio_root()])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and "parsed.yaml is missing" in error[0], error
