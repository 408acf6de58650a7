"""A shrunken `carv distill` on the shipped toy teacher writes every promised file; bad input is one line, exit 2."""

import json

import pytest

from carv.cli import main
from carv.paths import carv_load

SHRUNKEN = [
    "--steps", "2", "--samples", "2", "--k", "2", "--repeats", "3", "--checkpoints", "2", "--eval-every", "1",
    "--eval-samples", "2", "--reference-steps", "2", "--fake-updates", "1", "--prompts", "a red mug", "a blue car",
]  # fmt: skip


def test_shrunken_distill_writes_every_promised_file(tmp_path, capsys):
    assert main(["distill", *SHRUNKEN, "--out", str(tmp_path), "--tag", "tiny"]) == 0
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("tiny@")
    names = {"student-carv.pt", "student-baseline.pt", "report.json", "variance.png", "quality.png", "samples.png"}
    assert names <= {p.name for p in folder.iterdir()}
    report = json.loads((folder / "report.json").read_text())
    assert [c["step"] for c in report["checkpoints"]] == [0, 2]
    assert len(report["variance_reduction"]) == 2
    for c in report["checkpoints"]:
        assert c["variance_reduction"] == pytest.approx(c["baseline"]["value"] / c["carv"]["value"])
        assert c["baseline"]["se"] > 0 and c["components"]["grids"] == 3
    assert [h["step"] for h in report["quality"]["carv"]] == [0, 1, 2]
    assert {"frechet", "fidelity_carv_minus_baseline"} <= set(report["final"])
    assert f"run folder: {folder}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--k", "1"], "--k must be at least 2"),
        (["--repeats", "2"], "--repeats must be at least 3"),
        (["--proposal", "magic"], "--proposal must be one of"),
        (["--threads", "0"], "--threads must be a positive integer"),
        (["--teacher", "/nonexistent/teacher"], "teacher folder /nonexistent/teacher does not exist"),
        (["--judge", "/nonexistent/judge"], "judge folder /nonexistent/judge does not exist"),
        (["--prompts", "a red hamburger"], "cannot score prompt 'a red hamburger'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(arguments, message, capsys, tmp_path):
    assert main(["distill", *arguments, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("carv distill: error:") and message in err, err
    assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_word_of_a_known_shape(capsys, tmp_path, monkeypatch):
    """A prompt the judge parses but the teacher's tokenizer lacks is caught by the teacher-vocabulary check."""
    monkeypatch.setattr("carv.toyworld.world.parse_prompt", lambda prompt: None)
    assert (
        main(["distill", "--prompts", "a red zeppelin", "--out", str(tmp_path), "--teacher", carv_load("toy-teacher")])
        == 2
    )
    assert "does not know the word(s) zeppelin" in capsys.readouterr().err
