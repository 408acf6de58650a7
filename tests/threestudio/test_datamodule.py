"""carv-random-camera-datamodule: threestudio's batches with stratified azimuths, each marginally uniform."""

import math
import random
import sys

import pytest
import torch

from carv.cameras import GOLDEN

from .launch_runs import TOY, assert_complete_train_run, check_ok, make_workdir, run_launch, toy_overrides

SMALL = {"width": 8, "height": 8, "eval_width": 8, "eval_height": 8, "n_val_views": 1, "n_test_views": 2}


def train_dataset(threestudio, name: str, seed: int = 0, **options):
    torch.manual_seed(seed)
    random.seed(seed)
    module = threestudio.find(name)({**SMALL, **options})
    module.setup("fit")
    return module.train_dataset


def fractions(batch) -> torch.Tensor:
    return (batch["azimuth"].double() + 180.0) / 360.0


@pytest.mark.parametrize("sampling", ["stratified", "golden"])
def test_batches_have_threestudios_keys_shapes_and_types(threestudio, sampling):
    ours = train_dataset(threestudio, "carv-random-camera-datamodule", batch_size=4, carv_azimuth_sampling=sampling)
    theirs = train_dataset(threestudio, "random-camera-datamodule", batch_size=4)
    a, b = ours.collate({}), theirs.collate({})
    assert a.keys() == b.keys()
    for key, value in b.items():
        if isinstance(value, torch.Tensor):
            assert (a[key].shape, a[key].dtype) == (value.shape, value.dtype), key
        else:
            assert a[key] == value, key


@pytest.mark.parametrize("sampling", ["stratified", "golden"])
def test_a_batch_puts_one_camera_in_each_stratum_where_its_azimuth_says(threestudio, sampling):
    dataset = train_dataset(
        threestudio,
        "carv-random-camera-datamodule",
        batch_size=5,
        carv_azimuth_sampling=sampling,
        camera_perturb=0.0,
        center_perturb=0.0,
    )
    for _ in range(10):
        batch = dataset.collate({})
        assert sorted((fractions(batch) * 5).floor().long().tolist()) == list(range(5))
        position = batch["camera_positions"]
        seen = torch.rad2deg(torch.atan2(position[:, 1], position[:, 0]))
        assert torch.allclose(
            torch.remainder(seen - batch["azimuth"] + 180.0, 360.0) - 180.0, torch.zeros(5), atol=1e-3
        )


def test_golden_batches_rotate_their_strata_by_the_golden_ratio(threestudio):
    dataset = train_dataset(threestudio, "carv-random-camera-datamodule", batch_size=4, carv_azimuth_sampling="golden")
    offsets = [(fractions(dataset.collate({})).min().item() * 4) % 1.0 for _ in range(4)]
    steps = [(b - a) % 1.0 for a, b in zip(offsets, offsets[1:], strict=False)]
    assert steps == pytest.approx([GOLDEN] * 3, abs=1e-5)


def test_the_default_is_threestudios_own_draw(threestudio):
    ours = train_dataset(threestudio, "carv-random-camera-datamodule", seed=3, batch_size=4)
    theirs = train_dataset(threestudio, "random-camera-datamodule", seed=3, batch_size=4)
    torch.manual_seed(5)
    random.seed(5)
    a = ours.collate({})
    torch.manual_seed(5)
    random.seed(5)
    b = theirs.collate({})
    assert torch.equal(a["azimuth"], b["azimuth"]) and torch.equal(a["rays_d"], b["rays_d"])


def test_progressive_azimuth_range_is_respected(threestudio):
    dataset = train_dataset(
        threestudio, "carv-random-camera-datamodule", batch_size=3, carv_azimuth_sampling="golden", progressive_until=10
    )
    dataset.update_step(0, 0)  # threestudio narrows the azimuth range to [0, 0] at step 0
    assert torch.equal(dataset.collate({})["azimuth"], torch.zeros(3))


@pytest.mark.parametrize("sampling", ["stratified", "golden"])
def test_each_camera_of_a_late_batch_is_marginally_uniform(threestudio, sampling):
    """Camera j of the third batch over independent runs: Kolmogorov-Smirnov against U[-180, 180) (DKW bound)."""
    runs, renders, alpha = 300, 3, 0.01 / (3 * 2)  # Bonferroni over cameras and rules
    first = train_dataset(
        threestudio, "carv-random-camera-datamodule", batch_size=renders, carv_azimuth_sampling=sampling
    )
    draws = []
    for seed in range(runs):
        torch.manual_seed(seed)
        dataset = type(first)(first.cfg)  # a new run's training dataset
        draws.append([fractions(dataset.collate({})) for _ in range(3)][-1])
    draws = torch.stack(draws)
    bound = math.sqrt(math.log(2.0 / alpha) / (2.0 * runs))
    for camera in range(renders):
        u = draws[:, camera].sort().values
        i = torch.arange(1, runs + 1, dtype=torch.float64)
        distance = max((i / runs - u).max().item(), (u - (i - 1) / runs).max().item())
        assert distance < bound, camera


def test_an_unknown_rule_is_refused(threestudio):
    with pytest.raises(ValueError, match="threestudio, stratified, golden"):
        threestudio.find("carv-random-camera-datamodule")({**SMALL, "carv_azimuth_sampling": "sobol"})


def test_toy_teacher_trains_through_launch_with_golden_cameras(threestudio_root, tmp_path):
    workdir = make_workdir(tmp_path)
    overrides = toy_overrides("golden", steps=2) + [
        "data_type=carv-random-camera-datamodule",
        "data.carv_azimuth_sampling=golden",
        "data.batch_size=2",
        "system.guidance.noise_samples_per_render=2",
    ]
    check_ok(run_launch(threestudio_root, workdir, TOY, "train", overrides))
    assert_complete_train_run(workdir / "outputs" / "carv-toy-teacher" / "golden", 2, 5)


@pytest.mark.parametrize("name", ["random-camera-datamodule", "carv-random-camera-datamodule"])
def test_auto_probe_batches_have_independent_azimuths_and_the_rule_comes_back(threestudio, name):
    """In 40 batches of 4, iid azimuths put two in one quarter of the range in all but 40 (4! / 4^4)^40 ~ 1e-37 of
    cases; the training rule (one per quarter) never does."""
    independent_azimuths = sys.modules["threestudio-carv.auto_k"].independent_azimuths  # loaded by the fixture
    options = {"carv_azimuth_sampling": "golden"} if name.startswith("carv") else {}
    dataset = train_dataset(threestudio, name, batch_size=4, **options)

    def quarters_shared() -> int:
        return sum(len(set((fractions(dataset.collate({})) * 4).floor().long().tolist())) < 4 for _ in range(40))

    with independent_azimuths(dataset):
        assert quarters_shared() > 0
    assert quarters_shared() == 0
    assert dataset.cfg.batch_uniform_azimuth and dataset.cfg.get("carv_azimuth_sampling", "golden") == "golden"


def test_auto_finds_the_batch_size_threestudio_cannot_collate_and_leaves_the_draws_alone(threestudio):
    """threestudio 0.2.3's collate crosses along the batch axis at batch size 3 (torch.cross without dim): those
    cameras are not rotations. The check collates a batch of each size, and the next batch is what it would have been
    without it; the carv datamodule's per-camera rules draw any size."""
    renders_without_valid_cameras = sys.modules["threestudio-carv.auto_k"].renders_without_valid_cameras
    checked = train_dataset(threestudio, "random-camera-datamodule", seed=5, batch_size=2)
    assert renders_without_valid_cameras(checked, 8) == frozenset({3})
    assert checked.batch_size == 2
    after_check = checked.collate({})
    unchecked = train_dataset(threestudio, "random-camera-datamodule", seed=5, batch_size=2).collate({})
    for key, value in unchecked.items():
        assert torch.equal(after_check[key], value) if isinstance(value, torch.Tensor) else after_check[key] == value
    golden = train_dataset(threestudio, "carv-random-camera-datamodule", batch_size=3, carv_azimuth_sampling="golden")
    assert renders_without_valid_cameras(golden, 8) == frozenset()
    rotation = golden.collate({})["c2w"][:, :3, :3]
    assert torch.allclose(rotation.transpose(1, 2) @ rotation, torch.eye(3).expand(3, 3, 3), atol=1e-5)
