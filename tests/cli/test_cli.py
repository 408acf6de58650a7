import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import carv
from carv.cli import main
from carv.pipeline.runner import text_to_3d

from ..helpers import assert_one_line_error, assert_same_parameters, run_folder_of, shrunken


def test_text_to_3d_then_turntable(toy_teacher, random_judge, tmp_path, capsys):
    assert main(["text-to-3d", "a blue duck", *shrunken(toy_teacher, random_judge, tmp_path)]) == 0
    run_dir = run_folder_of(capsys.readouterr().out)
    assert (run_dir / "save" / "it2-test.mp4").is_file() and (run_dir / "metrics.json").is_file()
    assert main(["turntable", str(run_dir), "--frames", "4", "--resolution", "24"]) == 0
    frames = run_dir / "save" / "it2-turntable-4x24px"
    assert (frames.with_suffix(".mp4")).is_file() and (frames.with_suffix(".gif")).is_file()
    from PIL import Image

    assert sorted(p.name for p in frames.glob("*.png")) == ["0.png", "1.png", "2.png", "3.png"]
    assert Image.open(frames / "0.png").size == (24, 24)


def test_compare_writes_video_plot_and_times(toy_teacher, random_judge, tmp_path, capsys):
    overrides = shrunken(toy_teacher, random_judge, tmp_path)
    argv = ["compare", "a red mug", "--seconds", "0.5", "--eval-every", "1", "--threshold", "0.01", *overrides]
    argv += ["--carv-set", "system.guidance.noise_samples_per_render=3"]
    assert main(argv) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1].split(": ", 1)[1])
    for name in ("compare.mp4", "compare.gif", "fidelity_vs_time.png", "compare.json"):
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "compare.json").read_text())
    assert summary["baseline"]["setting"] == "R=4 K=1 uniform"
    assert summary["carv"]["setting"].startswith("R=1 K=3 sds stratified")
    for label in ("baseline", "carv"):
        assert summary[label]["seconds_to_threshold"] is not None  # threshold 0.01: reached at the first check
        assert (folder / label / "ckpts" / "last.ckpt").is_file()


def test_unknown_words_list_the_known_ones_and_how_to_switch(toy_teacher, random_judge, tmp_path, capsys):
    argv = ["text-to-3d", "a red zebra", *shrunken(toy_teacher, random_judge, tmp_path)]
    assert_one_line_error(capsys, argv, "zebra", "knows: a, back, blue", "pretrained_model_name_or_path=")


def test_missing_teacher_folder(random_judge, tmp_path, capsys):
    argv = ["text-to-3d", "a red mug", *shrunken(tmp_path / "nowhere", random_judge, tmp_path)]
    assert_one_line_error(capsys, argv, "teacher folder", "nowhere", "does not exist")


@pytest.mark.parametrize("weights", [None, {"x": 0}, {"features.0.0.weight": 0}])
def test_judge_folder_without_a_judge(toy_teacher, random_judge, tmp_path, capsys, weights):
    folder = tmp_path / "not_a_judge"
    shutil.copytree(random_judge, folder)
    (folder / "judge.pt").unlink()
    if weights is not None:
        torch.save({key: torch.zeros(value) for key, value in weights.items()}, folder / "judge.pt")
    argv = ["text-to-3d", "a red mug", *shrunken(toy_teacher, folder, tmp_path)]
    assert_one_line_error(capsys, argv, "holds no usable judge", "not_a_judge")


@pytest.mark.parametrize(
    ("override", "fragment"),
    [("system.guidance.guidance_scal=3", "guidance_scal"), ("trainer.max_steps=-", "max_steps")],
)
def test_unknown_key_or_bad_value(toy_teacher, random_judge, tmp_path, capsys, override, fragment):
    argv = ["text-to-3d", "a red mug", *shrunken(toy_teacher, random_judge, tmp_path), override]
    assert_one_line_error(capsys, argv, "config", fragment)


def test_output_folder_that_cannot_be_written(toy_teacher, random_judge, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    argv = ["text-to-3d", "a red mug", *shrunken(toy_teacher, random_judge, tmp_path), f"exp_root_dir={blocker}"]
    assert_one_line_error(capsys, argv, "cannot write the output folder", "a_file")


def test_turntable_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert_one_line_error(capsys, ["turntable", str(tmp_path)], "not a finished run folder")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"carv {carv.__version__}"


def test_compare_help_shows_its_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 240.0)", "(default: 0.8)", "(default: 10)", "(default: cpu-baseline)"):
        assert default in text, default


def test_help_imports_neither_torch_nor_lightning():
    code = "import sys\nfrom carv.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    code += "loaded = [m for m in ('torch', 'pytorch_lightning', 'transformers') if m in sys.modules]\n"
    code += "assert not loaded, loaded\n"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_variance_of_a_missing_path_says_it_does_not_exist(tmp_path, capsys):
    assert_one_line_error(capsys, ["variance", str(tmp_path / "nowhere")], "nowhere does not exist")


def test_a_prompt_the_tokenizer_would_cut_stops_before_any_folder(toy_teacher, random_judge, tmp_path, capsys):
    argv = ["text-to-3d", "a a a a a a a a a a a a a a a a red mug", *shrunken(toy_teacher, random_judge, tmp_path)]
    assert_one_line_error(capsys, argv, "23 tokens", "keeps 16", "cut")
    assert not (tmp_path / "cpu-carv").exists()


def test_compare_bars_show_the_budget_in_seconds_and_the_side(toy_teacher, random_judge, tmp_path, capsys):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path), "trainer.enable_progress_bar=true"]
    assert main(["compare", "a red mug", "--seconds", "0.5", "--eval-every", "50", *overrides]) == 0
    bars = capsys.readouterr().err.replace("\r", "\n")
    assert "baseline (cpu-baseline)" in bars and "carv (cpu-carv)" in bars
    assert re.search(r"\| \d+\.\d/0\.5 s of training \[", bars) and "1000000" not in bars


def test_a_resumed_run_shows_its_steps_out_of_the_total(toy_teacher, random_judge, tmp_path, capsys):
    assert main(["text-to-3d", "a red mug", *shrunken(toy_teacher, random_judge, tmp_path)]) == 0
    run_dir = run_folder_of(capsys.readouterr().out)
    argv = ["text-to-3d", "a red mug", *shrunken(toy_teacher, random_judge, tmp_path, steps=3)]
    assert main([*argv, "trainer.enable_progress_bar=true", f"resume={run_dir}"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"\| 2/3 \[", captured.err) and re.search(r"\| 3/3 \[", captured.err)
    assert "steps: 3 (1 in this process)" in captured.out


def test_a_run_killed_mid_way_resumes_from_its_folder(toy_teacher, random_judge, tmp_path):
    """SIGKILL after ckpts/last.ckpt was written (every 0.2 s here, as every 5 s by default), then resume=RUN_DIR."""
    outputs = tmp_path / "killed"
    argv = [sys.executable, "-m", "carv.cli", "text-to-3d", "a red mug", *shrunken(toy_teacher, random_judge, outputs)]
    child = subprocess.Popen(
        [*argv, "trainer.max_steps=100000", "checkpoint.last_every_seconds=0.2"], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not list(outputs.glob("cpu-carv/*/ckpts/last.ckpt")) and child.poll() is None:
            assert time.monotonic() < deadline, "no ckpts/last.ckpt within 120 s"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL
    assert "site-packages" not in stderr.decode(), stderr.decode()  # no Lightning warnings a user cannot act on
    (run_dir,) = outputs.glob("cpu-carv/*")
    assert not (run_dir / "metrics.json").exists()
    step = torch.load(run_dir / "ckpts" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    resumed = text_to_3d(
        "a red mug", "cpu-carv", [*shrunken(toy_teacher, random_judge, tmp_path, steps=step + 2), f"resume={run_dir}"]
    )
    straight = text_to_3d("a red mug", "cpu-carv", shrunken(toy_teacher, random_judge, tmp_path, steps=step + 2))
    assert resumed.metrics["steps"] == step + 2 and resumed.metrics["steps_this_process"] == 2
    assert_same_parameters(resumed.run_dir / "ckpts" / "last.ckpt", straight.run_dir / "ckpts" / "last.ckpt")


def test_compare_checks_both_sides_before_it_makes_a_folder(toy_teacher, random_judge, tmp_path, capsys):
    argv = ["compare", "a red mug", "--seconds", "0.5", *shrunken(toy_teacher, random_judge, tmp_path)]
    assert_one_line_error(capsys, [*argv, "--carv-set", "system.guidance.timestep_proposal=nonsense"], "nonsense")
    assert not (tmp_path / "compare").exists() and not list(tmp_path.glob("cpu-*"))


def test_the_public_names_of_carv_import_on_first_use():
    code = "import sys, carv\nassert 'torch' not in sys.modules\n"
    code += "from carv import renoise_k, timestep_weighting\nfrom carv.timesteps import weighting_of_schedule\n"
    code += "assert timestep_weighting is weighting_of_schedule and renoise_k.__module__ == 'carv.estimator'\n"
    code += "assert all(hasattr(carv, name) for name in carv.__all__) and set(carv.__all__) <= set(dir(carv))\n"
    code += "assert carv.accounting.CostModel is carv.CostModel and not hasattr(carv, 'no_such_name')\n"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert len(carv.__all__) == 22


def test_a_bad_clock_is_refused_in_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CARV_CLOCK", "bogus")
    assert main(["text-to-3d", "a red mug", f"exp_root_dir={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip() == (
        "carv text-to-3d: error: $CARV_CLOCK='bogus' names no clock; choose wall or process"
    )
    assert not any(tmp_path.iterdir())  # no run folder was made
