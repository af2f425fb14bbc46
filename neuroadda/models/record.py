"""The one record every model becomes, whatever its kind (see :mod:`.checkpoint`): :class:`Backbone`."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import nn


class Backbone(NamedTuple):
    """A loaded model of any kind: the network (eval mode) and its metadata, with typed accessors."""

    net: nn.Module  # AffinityUNet or ImportedNet: (B, 1, z, y, x) -> (B, 3, z, y, x) affinity logits
    meta: dict[str, Any]

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """(z, y, x) nm the network was trained at."""
        return tuple(float(v) for v in self.meta["voxel_size"])

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.meta["patch_size"])

    @property
    def normalization(self) -> str | dict:
        """A mode fitted per volume (zscore, percentile, none) or a fixed/range spec (:mod:`.sidecar`)."""
        return self.meta.get("normalization", "zscore")

    @property
    def threshold(self) -> float | None:
        t = self.meta.get("threshold")
        return None if t is None else float(t)

    @property
    def labels_kind(self) -> str:
        return self.meta.get("labels_kind", "3d_instance")

    @property
    def learned(self) -> bool | None:
        """False when calibration found the model no better than one segment; None in older checkpoints."""
        return self.meta.get("learned")

    @property
    def origin(self) -> str:
        """Where the model came from: "neuroadda" (trained or fine-tuned here; a checkpoint fine-tuned from an
        imported model names its file in ``imported_from``), "torchscript" or "bioimage.io" (imported as such)."""
        return self.meta.get("origin", "neuroadda")

    @property
    def threshold_region(self) -> dict:
        """Where the threshold was chosen, one type for every checkpoint kind: ``{"what": str, "box": [[start,
        stop] x 3] | None}`` (older checkpoints stored a box list after pretraining, a string after fine-tuning)."""
        region = self.meta.get("threshold_region")
        if isinstance(region, dict):
            return region
        if isinstance(region, list):
            what = "validation slab" if self.meta.get("threshold_region_is_validation") else "training volume"
            return {"what": what, "box": region}
        return {"what": region or "unknown", "box": None}

    def normalizer_for(self, raw, *, seed: int = 0):
        """The intensity normaliser this network expects, fitted on the raw :class:`~neuroadda.data.volume.Volume`."""
        from neuroadda.data.normalize import normalizer_from_spec

        return normalizer_from_spec(raw, self.normalization, seed=seed)


def imported_backbone(net: nn.Module, meta: dict[str, Any]) -> Backbone:
    """The record of a freshly imported network: ``meta`` (origin, model file, voxel size, patch, normalisation,
    threshold or None, ...) completed with what every checkpoint has; an imported threshold is not calibrated
    (0.5 unless the model says otherwise)."""
    t = meta.get("threshold")
    return Backbone(net.eval(), {
        **meta, "kind": "imported", "net": net.hparams, "threshold": 0.5 if t is None else float(t),
        "labels_kind": meta.get("labels_kind") or "3d_instance", "output": net.adapter.output,
        "threshold_region": {"what": f"given with the {meta['origin']} model" if t is not None
                             else "not calibrated: 0.5 (no threshold given with the model)", "box": None}})
