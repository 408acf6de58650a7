import json

import pytest

from carv.pipeline import runner
from carv.pipeline.runner import new_folder, text_to_3d

from .fixtures import assert_same_parameters, shrunken

PROMISED = [
    "ckpts/last.ckpt",
    "configs/parsed.yaml",
    "csv_logs/version_0/metrics.csv",
    "save/it2-test.mp4",
    "save/it2-test.gif",
    "save/it2-test/0.png",
    "save/it2-test/2.png",
    "metrics.json",
]


@pytest.fixture(scope="module")
def finished_run(toy_teacher, random_judge, tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    return text_to_3d("a red mug", "cpu-carv", shrunken(toy_teacher, random_judge, outputs))


def test_run_writes_every_promised_file(finished_run):
    run_dir = finished_run.run_dir
    assert run_dir.parent.name == "cpu-carv" and run_dir.name.startswith("a_red_mug@")
    for name in PROMISED:
        assert (run_dir / name).is_file(), name
    assert len(list((run_dir / "save" / "it2-test").glob("*.png"))) == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["noise_samples_per_render"] == 8
    for phase in ("train", "render", "encode", "teacher", "guidance", "backward", "teacher_load", "total"):
        assert metrics["seconds"][phase] > 0, phase
    assert 0.0 <= metrics["fidelity"]["mean"] <= 1.0 and metrics["fidelity"]["views"] == 2
    assert "train/loss_sds" in (run_dir / "csv_logs/version_0/metrics.csv").read_text()


def test_resume_continues_from_the_checkpoints_step(finished_run, toy_teacher, random_judge, tmp_path):
    overrides = shrunken(toy_teacher, random_judge, tmp_path, steps=4)
    checkpoint = finished_run.run_dir / "ckpts" / "last.ckpt"
    resumed = text_to_3d("a red mug", "cpu-carv", [*overrides, f"resume={checkpoint}"])
    straight = text_to_3d("a red mug", "cpu-carv", overrides)
    assert resumed.run_dir != finished_run.run_dir and resumed.metrics["steps"] == 4
    assert (resumed.run_dir / "save" / "it4-test.mp4").is_file()
    assert_same_parameters(resumed.run_dir / "ckpts" / "last.ckpt", straight.run_dir / "ckpts" / "last.ckpt")


def test_two_runs_in_the_same_second_get_two_folders(tmp_path, monkeypatch):
    class FrozenClock:
        @staticmethod
        def now():
            from datetime import datetime

            return datetime(2026, 1, 1, 12, 0, 0)

    monkeypatch.setattr(runner, "datetime", FrozenClock)
    first, second = new_folder(tmp_path, "a_red_mug"), new_folder(tmp_path, "a_red_mug")
    assert first != second and first.is_dir() and second.is_dir()
    assert (first.name, second.name) == ("a_red_mug@20260101-120000", "a_red_mug@20260101-120000-1")
