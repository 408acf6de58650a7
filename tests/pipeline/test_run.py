import json
import shutil
import warnings

import pytest

from carv.pipeline import runner
from carv.pipeline.config import load_config
from carv.pipeline.errors import UserError
from carv.pipeline.runner import make_run_dir, new_folder, prompt_tag, text_to_3d

from ..helpers import assert_same_parameters, shrunken

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


def run_folders(outputs):
    return sorted(p for p in outputs.glob("*/*") if p.is_dir())


def test_resume_from_a_run_folder_accounts_this_process_and_the_whole_run(
    finished_run, toy_teacher, random_judge, tmp_path
):
    first = finished_run.metrics
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=3), f"resume={finished_run.run_dir}"]
    resumed = text_to_3d("a red mug", "cpu-carv", overrides).metrics
    own, whole = resumed["seconds"], resumed["run_seconds"]
    assert resumed["steps"] == 3 and resumed["steps_this_process"] == 1
    assert 0 < own["train"] <= own["total"] and whole["train"] <= whole["total"]
    assert whole["train"] == pytest.approx(first["seconds"]["train"] + own["train"], rel=1e-9)
    assert whole["teacher"] == pytest.approx(first["seconds"]["teacher"] + own["teacher"], rel=1e-9)
    assert own["total"] + first["seconds"]["train"] < whole["total"] < own["total"] + first["seconds"]["total"]


def test_resuming_a_finished_run_to_its_own_step_says_so_and_writes_nothing(
    finished_run, toy_teacher, random_judge, tmp_path
):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path, steps=2), f"resume={finished_run.run_dir}"]
    with pytest.raises(UserError, match="already at step 2 and trainer.max_steps is 2: nothing to train"):
        text_to_3d("a red mug", "cpu-carv", overrides)
    assert run_folders(tmp_path) == []


def test_a_run_folder_without_a_checkpoint_is_not_resumable(toy_teacher, random_judge, tmp_path):
    overrides = [*shrunken(toy_teacher, random_judge, tmp_path / "out"), f"resume={tmp_path}"]
    with pytest.raises(UserError, match="has no ckpts/last.ckpt"):
        text_to_3d("a red mug", "cpu-carv", overrides)


def corrupt_teacher(teacher, tmp_path):
    copy = tmp_path / "corrupt_teacher"
    shutil.copytree(teacher, copy)
    weights = next((copy / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    return copy


@pytest.mark.parametrize(
    "bad",
    [
        ["system.guidance.timestep_proposal=nonsense"],
        ["system.guidance.min_step_percent=0.9", "system.guidance.max_step_percent=0.5"],
        ["system.guidance.max_step_percent=[0, 0.98, 0.01, 2]"],  # inverted from step 2 on
        [
            "system.geometry.grid_resolution=6",
            "trainer.max_steps=3",
            "resume=FINISHED/ckpts/last.ckpt",
        ],  # another scene size
        "corrupt teacher",
    ],
)
def test_config_errors_stop_before_the_run_folder_is_made(finished_run, toy_teacher, random_judge, tmp_path, bad):
    outputs = tmp_path / "outputs"
    (outputs / "cpu-carv").mkdir(parents=True)
    mine = outputs / "cpu-carv" / "my_notes.txt"
    mine.write_text("the user's own file")
    teacher = corrupt_teacher(toy_teacher, tmp_path) if bad == "corrupt teacher" else toy_teacher
    extra = [] if bad == "corrupt teacher" else [item.replace("FINISHED", str(finished_run.run_dir)) for item in bad]
    with pytest.raises(UserError):
        text_to_3d("a red mug", "cpu-carv", [*shrunken(teacher, random_judge, outputs), *extra])
    assert run_folders(outputs) == [] and mine.read_text() == "the user's own file"


def test_a_long_prompt_gets_a_folder_name_the_file_system_takes(toy_teacher, random_judge, tmp_path):
    prompt = " ".join(["a red mug"] * 200)
    config = load_config("cpu-carv", shrunken(toy_teacher, random_judge, tmp_path), prompt=prompt)
    folder = make_run_dir(config, prompt)
    assert folder.is_dir() and folder.name.startswith("a_red_mug_a_red_mug") and len(folder.name.encode()) < 255
    assert len(prompt_tag("ü" * 200).encode()) <= runner.TAG_BYTES and prompt_tag("ü" * 200) == "ü" * 48


def test_an_article_and_a_full_stop_are_read_as_the_captions_write_them(toy_teacher, random_judge, tmp_path):
    result = text_to_3d("An orange teapot.", "cpu-carv", shrunken(toy_teacher, random_judge, tmp_path))
    metrics = result.metrics
    assert (metrics["prompt"], metrics["prompt_as_given"]) == ("A orange teapot", "An orange teapot.")
    assert metrics["fidelity"]["mean"] is not None and metrics["fidelity"]["views"] == 2
    assert result.run_dir.name.startswith("An_orange_teapot.@")


def test_quiet_warnings_hide_only_the_listed_ones():
    listed = [
        "The 'train_dataloader' does not have many workers which may be a bottleneck.",
        "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`",
        "Using ModelCheckpoint with manual optimization and every_n_train_steps, but no pre-optimization state",
    ]
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with runner.quiet_warnings():
            for message in [*listed, "a real problem"]:
                warnings.warn(message, UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["a real problem"]
