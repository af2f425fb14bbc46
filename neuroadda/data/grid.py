"""The one rule for how a target meets a backbone: the voxel grid a backbone sees a target on.

**Rule.** A backbone sees a target at its own training pixel size in-plane (y, x); along z at its own spacing
too when both are isotropic (block-face data such as FIB-SEM), else at the target's own section spacing.
Sections of anisotropic data (ssTEM, ATUM-SEM) are physical cuts: interpolating between them invents images
and dropping them loses data, and the network's anisotropic strides already take the z spacing as given.

So a 30x6x6 nm target meets a 10 nm backbone at 30x10x10, a 50x4x4 ssTEM target meets an isotropic 10 nm
FIB-SEM backbone at 50x10x10, a 10 nm FIB-SEM target meets a 50x10x10 ssTEM backbone at 10x10x10 and an 8 nm
isotropic target meets a 10 nm isotropic backbone at 10x10x10. ``select-source`` (every estimator),
``select-samples``, ``finetune``, ``adapt``, ``predict`` and the transfer study all use :func:`meet`; where a
prediction is written or scored, it is brought back to the target's own grid (:func:`neuroadda.data.volume.resize`).
A volume whose voxel size is unknown (no card, attribute or flag) is used as stored.
"""

from __future__ import annotations

import numpy as np

ISOTROPIC_BELOW = 2.0  # z spacing < 2x the finer in-plane spacing: isotropic (the nnU-Net stride rule's cut)
RULE = ("in-plane (y, x) at the backbone's training pixel size; z at the backbone's spacing only when both are "
        "isotropic (z < 2x in-plane), else the target's own section spacing; predictions are brought back to "
        "the target's grid where they are written or scored")


def anisotropy(voxel_size) -> float:
    """z spacing over the finer in-plane spacing (1 = isotropic)."""
    z, y, x = (float(v) for v in voxel_size)
    return z / min(y, x)


def is_isotropic(voxel_size) -> bool:
    return anisotropy(voxel_size) < ISOTROPIC_BELOW


def meet(target_voxel_size, backbone_voxel_size) -> tuple[float, float, float]:
    """(z, y, x) nm at which a backbone trained at ``backbone_voxel_size`` sees a target stored at
    ``target_voxel_size`` (see the module docstring for the rule)."""
    tz = float(target_voxel_size[0])
    bz, by, bx = (float(v) for v in backbone_voxel_size)
    z = bz if is_isotropic(target_voxel_size) and is_isotropic(backbone_voxel_size) else tz
    return (z, by, bx)


def same_grid(a, b) -> bool:
    return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-9))


def grid_shape(shape, voxel_size, to_voxel_size) -> tuple[int, int, int]:
    """The shape of a region of ``shape`` voxels at ``voxel_size`` seen at ``to_voxel_size`` (as
    :class:`neuroadda.data.volume.Volume` rounds it)."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, voxel_size, to_voxel_size))

