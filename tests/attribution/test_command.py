"""`carv attribute` end to end on a tiny random teacher: files, same seed same scores, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from carv.cli import main

TINY = ["--train-images", "10", "--views-per-shape", "1", "--budgets", "1,2", "--iid-draws", "4"]
TINY += ["--truth-draws", "4", "--query", "a red chair", "--query", "a blue mug", "--query-steps", "2"]
TINY += ["--proj-dim", "8"]


def run(teacher, out, capsys, *extra):
    assert main(["attribute", "--teacher", str(teacher), "--out", str(out), *TINY, *extra]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1].split(": ", 1)[1])
    return folder, json.loads((folder / "report.json").read_text())


def scores_of(report):
    return report["curves"], report["top_matches"], report["truth_split_half_spearman"]


def test_same_seed_same_scores_and_the_files(toy_teacher, tmp_path, capsys):
    first, report = run(toy_teacher, tmp_path, capsys)
    for name in ("report.json", "correlation_vs_samples.png", "queries_top_train.png", "features.pt"):
        assert (first / name).is_file(), name
    assert sorted(report["curves"]) == ["carv", "grid", "iid"]
    assert sorted(int(k) for k in report["curves"]["iid"]) == [1, 2, 4]
    assert [row["budget"] for row in report["multiplier"]] == [1, 2]
    second, again = run(toy_teacher, tmp_path, capsys)
    assert second != first  # a new folder, nothing overwritten
    assert scores_of(again) == scores_of(report)


def one_line_error(capsys, argv, fragment, tmp_path):
    assert main(["attribute", "--out", str(tmp_path / "out"), *argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("carv attribute: error:") and fragment in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--query", "a red hamburger"], "hamburger"),
        (["--query", "a red"], "shape"),
        (["--budgets", "0"], "budget"),
        (["--budgets", "2,0"], "budget"),
        (["--truth-draws", "3"], "truth_draws"),
        (["--proposal", "oracle"], "proposal"),
    ],
)
def test_bad_input_is_one_line(toy_teacher, tmp_path, capsys, argv, fragment):
    one_line_error(capsys, ["--teacher", str(toy_teacher), *argv], fragment, tmp_path)


def test_missing_teacher_is_one_line(tmp_path, capsys):
    one_line_error(capsys, ["--teacher", str(tmp_path / "nowhere")], "nowhere", tmp_path)


def test_math_modules_import_no_diffusers():
    code = "import sys, carv.attribution; assert 'diffusers' not in sys.modules and 'threestudio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
