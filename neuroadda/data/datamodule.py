"""LightningDataModule: random augmented training patches and fixed validation patches from one volume."""

from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from neuroadda.data.affinities import OFFSETS
from neuroadda.data.normalize import fit_normalizer
from neuroadda.data.patches import PatchDataset, build_augment, collate
from neuroadda.data.regions import box_shape, full_box, split_regions
from neuroadda.data.volume import LabelledVolume, check_patch_fits
from neuroadda.errors import InputError


class AffinityDataModule(pl.LightningDataModule):
    """Training patches from the training box, validation patches from the held-out slab.

    Args:
        vol: labelled volume (already at the training voxel size).
        data_cfg, augment_cfg, train_cfg: sections of :class:`neuroadda.config.PretrainConfig`.
        seed: patches are a deterministic function of (seed + rank, index).
        box: restrict training to this region (default: everything but the validation slab).
    """

    def __init__(self, vol: LabelledVolume, data_cfg, augment_cfg, train_cfg, *, seed: int = 0, box=None,
                 offsets=OFFSETS):
        super().__init__()
        if vol.labels is None:
            raise InputError(f"{vol.name}: training needs labels")
        self.vol, self.data_cfg, self.train_cfg, self.seed = vol, data_cfg, train_cfg, seed
        self.offsets = [tuple(o) for o in offsets]
        self.offset = 0  # items to skip: set to resumed step x batch size when resuming from a checkpoint
        self.patch = tuple(data_cfg.patch_size)
        check_patch_fits(vol, self.patch)
        train_box, val_box = split_regions(vol.shape, data_cfg.val_fraction) if box is None else (box, None)
        if val_box is not None and any(p > n for p, n in zip(self.patch, box_shape(train_box))):
            train_box, val_box = full_box(vol.shape), None  # too small to split: no validation
        check_patch_fits(vol, self.patch, train_box)
        self.train_box, self.val_box = train_box, val_box
        self.normalizer = fit_normalizer(vol.raw, data_cfg.normalization, seed=seed)
        self.augment = build_augment(augment_cfg, self.patch)

    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def train_dataset(self) -> PatchDataset:
        n = self.train_cfg.max_steps * self.train_cfg.batch_size
        return PatchDataset(self.vol, self.train_box, self.patch, self.normalizer, length=n,
                            seed=self.seed + 1000 * self._rank(), augment=self.augment, offset=self.offset,
                            offsets=self.offsets)

    def train_dataloader(self):
        ds = self.train_dataset()
        return DataLoader(ds, batch_size=self.train_cfg.batch_size, shuffle=False, collate_fn=collate,
                          num_workers=self.data_cfg.num_workers, persistent_workers=self.data_cfg.num_workers > 0)

    def val_dataloader(self):
        if self.val_box is None or self.train_cfg.val_patches == 0:
            return []
        if any(p > n for p, n in zip(self.patch, box_shape(self.val_box))):
            return []
        ds = PatchDataset(self.vol, self.val_box, self.patch, self.normalizer,
                          length=self.train_cfg.val_patches, seed=10_000 + self.seed, offsets=self.offsets)
        return DataLoader(ds, batch_size=self.train_cfg.batch_size, num_workers=0, collate_fn=collate)
