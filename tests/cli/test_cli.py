import json
import shutil
from pathlib import Path

import pytest
import torch

from carv.cli import main

from ..pipeline.fixtures import shrunken


def run_folder_of(output: str) -> Path:
    return Path(next(line for line in output.splitlines() if line.startswith("run folder: ")).split(": ", 1)[1])


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


def assert_one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("carv ")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


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
