"""carv-random-camera-datamodule: threestudio's random-camera-datamodule with stratified training azimuths.

`data.carv_azimuth_sampling` (carv.cameras.AZIMUTH_SAMPLING): `threestudio` (default) draws as threestudio does
(its batch_uniform_azimuth); `stratified` puts the batch's R = data.batch_size azimuths one in each of R equal
strata of threestudio's current azimuth range with one uniform offset per batch; `golden` rotates those strata
from batch to batch by the golden ratio from one uniform start (carv.cameras.lattice_offset). Either way every
camera's azimuth is marginally uniform over the range, so each step's gradient stays unbiased.

Only the azimuth changes: each camera is threestudio's own collate of one camera with its azimuth range narrowed
to that camera's azimuth, so elevation, distance, perturbations, fovy and light are threestudio's draws (iid over
the batch; threestudio's choice of elevation rule, made once per batch, is then made per camera, with the same
marginal). Batch b of a run's training loader is the b-th collate of this dataset (a resumed run starts its
golden sequence afresh, at a new uniform start).
"""

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from threestudio.data.uncond import RandomCameraDataModule, RandomCameraDataModuleConfig, RandomCameraIterableDataset
from threestudio.utils.config import parse_structured

from carv.cameras import AZIMUTH_SAMPLING, lattice_offset, stratified_azimuths

from .registration import register_once


@dataclass
class CarvRandomCameraDataModuleConfig(RandomCameraDataModuleConfig):
    carv_azimuth_sampling: str = "threestudio"  # threestudio, stratified or golden


def concatenate_batches(batches: list[dict]) -> dict:
    """One batch from single-camera collates: tensors joined along the camera axis, the rest (height, width) kept."""
    return {
        key: torch.cat([b[key] for b in batches]) if isinstance(value, torch.Tensor) else value
        for key, value in batches[0].items()
    }


class CarvRandomCameraIterableDataset(RandomCameraIterableDataset):
    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.batches_collated = 0
        self.golden_start = None

    def step_azimuths(self) -> torch.Tensor:
        """This batch's azimuths in degrees: one per stratum of the current range (threestudio's progressive one)."""
        sampling = self.cfg.carv_azimuth_sampling
        if self.golden_start is None:
            self.golden_start = torch.rand(1, dtype=torch.float64).item()
        fresh = torch.rand(1, dtype=torch.float64).item() if sampling == "stratified" else 0.0
        offset = lattice_offset(sampling, self.batch_size, self.batches_collated, self.golden_start, fresh)
        return stratified_azimuths(self.batch_size, tuple(self.azimuth_range), offset)

    def collate_one(self, batch, azimuth: float) -> dict:
        """threestudio's collate of one camera at this azimuth (its range narrowed to the point for the call)."""
        batch_size, azimuth_range = self.batch_size, self.azimuth_range
        self.batch_size, self.azimuth_range = 1, [azimuth, azimuth]
        try:
            return super().collate(batch)
        finally:
            self.batch_size, self.azimuth_range = batch_size, azimuth_range

    def collate(self, batch) -> dict:
        if self.cfg.carv_azimuth_sampling == "threestudio":
            return super().collate(batch)
        joined = concatenate_batches([self.collate_one(batch, a) for a in self.step_azimuths().tolist()])
        self.batches_collated += 1
        self.proj_mtx, self.fovy = joined["proj_mtx"], joined["fovy"]
        return joined


@register_once("carv-random-camera-datamodule")
class CarvRandomCameraDataModule(RandomCameraDataModule):
    cfg: CarvRandomCameraDataModuleConfig

    def __init__(self, cfg=None) -> None:
        pl.LightningDataModule.__init__(self)
        self.cfg = parse_structured(CarvRandomCameraDataModuleConfig, cfg)
        if self.cfg.carv_azimuth_sampling not in AZIMUTH_SAMPLING:
            raise ValueError(
                f"data.carv_azimuth_sampling must be one of {', '.join(AZIMUTH_SAMPLING)}, "
                f"got {self.cfg.carv_azimuth_sampling!r}"
            )

    def setup(self, stage=None) -> None:
        super().setup(stage)
        if stage in [None, "fit"]:
            self.train_dataset = CarvRandomCameraIterableDataset(self.cfg)
