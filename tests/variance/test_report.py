"""`carv variance` on a shrunken run (tiny random teacher) writes every promised file; bad input is one line."""

import json
from pathlib import Path

import pytest

from carv.cli import main
from carv.cost_curve import doubling_ladder
from carv.variance.text import headline, markdown_table

from ..helpers import assert_one_line_error, run_folder_of, shrunken

PER_CHECKPOINT = ("components.csv", "ecm_table.csv", "draws.csv", "ecm_frontier.png", "gradient_norm_vs_t.png")
SMALL_PROBE = [
    "--renders",
    "3",
    "--draws",
    "2",
    "--repeats",
    "3",
    "--curve-draws",
    "6",
    "--curve-repeats",
    "1",
    "--camera-repeats",
    "3",
]


def test_report_of_every_checkpoint_writes_its_files(toy_teacher, random_judge, tmp_path, capsys):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=2), "checkpoint.every_n_train_steps=1"]
    assert main(["text-to-3d", "a red mug", *overrides]) == 0
    run_dir = run_folder_of(capsys.readouterr().out)
    out = tmp_path / "report"
    assert main(["variance", str(run_dir), "--checkpoints", "all", "--out", str(out), *SMALL_PROBE]) == 0
    printed = capsys.readouterr().out
    assert "recommended:" in printed and "measured ECM" in printed and "cameras at the baseline" in printed
    assert "cost model of the recommendation: measured" in printed and "teacher curve c(n)" in printed
    report = json.loads((out / "report.json").read_text())
    assert (out / "cost_vs_draws.png").stat().st_size > 0 and report["cost_plot"] == str(out / "cost_vs_draws.png")
    assert [c["step"] for c in report["checkpoints"]] == [1, 2, 2]  # step 1, step 2 and last.ckpt
    for checkpoint in report["checkpoints"]:
        for name in PER_CHECKPOINT:
            assert (out / checkpoint["checkpoint"] / name).is_file(), name
        assert {c["setting"] for c in checkpoint["components"]} == {
            f"{p}{s}" for p in ("uniform", "sds", "gaussian", "adaptive") for s in ("", "+strat")
        }
        assert [v["setting"] for v in checkpoint["validation"]][1] == "uniform"
        assert checkpoint["costs"]["a"] > 0 and checkpoint["costs"]["b"] > 0
        curve = checkpoint["costs"]["curve"]
        assert [p["draws"] for p in curve] == [1, 2, 4, 6]  # the ladder up to --curve-draws
        seconds = [p["seconds"] for p in curve]
        assert seconds == sorted(seconds) and seconds[0] > 0 and "peak_bytes" not in curve[0]  # CPU: no bound
        assert checkpoint["costs"]["model"] == "measured" and checkpoint["linear"]["costs"]["model"] == "linear"
        budget = checkpoint["costs"]["a"] * 4 + seconds[2]  # C(4, 1) = 4 a + c(4)
        assert checkpoint["budget_seconds"] == pytest.approx(budget, rel=1e-12)
        assert len(checkpoint["norms_by_t"]["t"]) == 20
        cameras = checkpoint["camera_stratification"]
        assert set(cameras["rules"]) == {"iid", "stratified", "training"} and cameras["R"] == 4
        assert cameras["rules"]["training"]["measured"] == checkpoint["validation"][1]["measured"]
        assert cameras["rules"]["iid"]["ecm_vs_iid"]["ecm"] == 1.0
        ratio = cameras["rules"]["training"]["measured"] / cameras["rules"]["stratified"]["measured"]
        assert cameras["ecm_stratified_vs_training"]["ecm"] == pytest.approx(ratio)
    rows = headline(report)
    assert markdown_table(rows).count("\n") == len(rows) + 1 and rows[0]["prompt"] == "a red mug"
    assert main(["variance", str(run_dir), "--checkpoints", "ends", "--out", str(tmp_path / "ends"), *SMALL_PROBE]) == 0
    ends = json.loads((tmp_path / "ends" / "report.json").read_text())
    assert [c["checkpoint"] for c in ends["checkpoints"]][-1] == "last-step2"
    assert [c["step"] for c in ends["checkpoints"]] == [1, 2]


def test_report_of_a_config_probes_its_initial_scene(toy_teacher, random_judge, tmp_path, capsys):
    overrides = shrunken(toy_teacher, random_judge, tmp_path)
    argv = ["variance", "cpu-carv", "--prompt", "a blue duck", "--json", *SMALL_PROBE, *overrides]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoints"][0]["step"] == 0
    assert [p["draws"] for p in report["checkpoints"][0]["costs"]["curve"]] == list(doubling_ladder(6))
    assert (Path(report["folder"]) / "cost_vs_draws.png").is_file()
    assert (Path(report["folder"]) / "init-step0" / "ecm_table.csv").is_file()
    assert Path(report["folder"]).parent == tmp_path / "variance"


def test_bad_targets_and_options(toy_teacher, random_judge, tmp_path, capsys):
    overrides = shrunken(toy_teacher, random_judge, tmp_path)
    assert_one_line_error(capsys, ["variance", str(tmp_path), *overrides], "not a run folder", "--prompt")
    argv = ["variance", "cpu-carv", "--prompt", "a red mug", "--draws", "3", *overrides]
    assert_one_line_error(capsys, argv, "even --draws")
    argv = ["variance", "cpu-carv", "--prompt", "a red mug", "--curve-draws", "-1", *overrides]
    assert_one_line_error(capsys, argv, "--curve-draws >= 1")
