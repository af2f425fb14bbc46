"""Block-wise affinity prediction for volumes larger than memory, written into a zarr v3 array.

The volume is cut into blocks; each block is read with a halo of ``roi_size // 2`` voxels on every side
(clipped at the volume borders), predicted with MONAI's gaussian-blended sliding window, passed through a
sigmoid (the model outputs logits), cropped back to the block and written into ``out``. Only one block (plus
halo) is ever held in memory, whatever the size of the volume.

Output files: :func:`open_prediction_zarr` creates the array at ``path + '.tmp'``, the caller fills it with
:func:`predict_blockwise` and :func:`finalize_zarr` renames it into place. A reader opens the result with
``zarr.open_array(path, mode='r')``: shape (channels, z, y, x), float32 in [0, 1] or uint8 (probability * 255,
rounded); ``arr.attrs`` holds what the writer stored (voxel size, checkpoint, ...).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from monai.inferers import sliding_window_inference
from tqdm.auto import tqdm

from neuroadda.errors import InputError

# default block edge, in multiples of roi_size (before rounding up to whole output chunks)
BLOCK_ROIS = 3
DEFAULT_CHUNK = 64


class PredictionInputError(InputError, ValueError):
    """A volume, output array or parameter that predict_blockwise cannot use."""


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    t = (int(value),) * 3 if np.isscalar(value) else tuple(int(v) for v in value)  # type: ignore[arg-type]
    if len(t) != 3 or min(t) < 1:
        raise PredictionInputError(f"{name} must be a positive int or 3 positive ints (z, y, x), got {value!r}")
    return t  # type: ignore[return-value]


def _default_block_shape(shape, roi, out) -> tuple[int, int, int]:
    """A few ROIs per axis, rounded up to whole output chunks (each chunk is then written once), clipped."""
    chunks = getattr(out, "chunks", None)
    chunk = tuple(chunks[1:]) if chunks is not None and len(chunks) == 4 else (1, 1, 1)
    return tuple(
        min(s, -(-BLOCK_ROIS * r // c) * c) for s, r, c in zip(shape, roi, chunk)
    )  # type: ignore[return-value]


def _blocks(shape, block_shape):
    """Start/stop slices of the blocks tiling ``shape``, in C order."""
    ranges = [[(b, min(b + bs, s)) for b in range(0, s, bs)] for s, bs in zip(shape, block_shape)]
    return list(itertools.product(*ranges))


def predict_blockwise(
    model: torch.nn.Module,
    volume: Any,
    out: Any,
    *,
    roi_size: int | Sequence[int],
    out_channels: int = 3,
    block_shape: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 2,
    mode: str = "gaussian",
    device: str | torch.device | None = None,
    normalize: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool = True,
    amp: bool = False,
) -> None:
    """Predict sigmoid(model) over a lazy (z, y, x) ``volume`` block by block into ``out``.

    Args:
        model: maps (N, 1, z, y, x) float32 to (N, out_channels, z, y, x) logits. It is moved to ``device`` and
            run in eval mode (its training flag is restored afterwards).
        volume: (z, y, x) array-like with ``.shape`` and numpy slicing (h5py dataset, zarr array, ndarray);
            only block-sized slices are read.
        out: (out_channels, z, y, x) zarr array (or anything with numpy slice assignment), float32 or uint8;
            uint8 receives round(p * 255).
        roi_size: sliding-window patch size (int or (z, y, x)); axes where the volume is smaller are padded.
        block_shape: core block read at a time (default: ~3 ROIs per axis, rounded to out's chunks); each block
            is read with a halo of roi_size // 2 on every side.
        normalize: optional callable applied to each block read (float32 in, float32 out).
        amp: run the model under torch.autocast on ``device``.
    """
    shape = tuple(int(s) for s in volume.shape)
    if len(shape) != 3 or min(shape) < 1:
        raise PredictionInputError(f"volume must be a non-empty (z, y, x) array, got shape {shape}")
    roi = _triple(roi_size, "roi_size")
    out_shape = tuple(int(s) for s in out.shape)
    if out_shape != (out_channels,) + shape:
        raise PredictionInputError(f"out must have shape {(out_channels,) + shape} (channels, z, y, x), got {out_shape}")
    out_dtype = np.dtype(out.dtype)
    if out_dtype not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise PredictionInputError(f"out dtype must be float32 or uint8, got {out_dtype}")
    if not 0 <= overlap < 1:
        raise PredictionInputError(f"overlap must be in [0, 1), got {overlap}")
    block = _default_block_shape(shape, roi, out) if block_shape is None else _triple(block_shape, "block_shape")
    block = tuple(min(b, s) for b, s in zip(block, shape))
    halo = tuple(r // 2 for r in roi)
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))

    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode():
            for starts_stops in tqdm(_blocks(shape, block), desc="predict", unit="block", disable=not progress):
                read = tuple(slice(max(a - h, 0), min(b + h, s)) for (a, b), h, s in zip(starts_stops, halo, shape))
                raw = np.asarray(volume[read], dtype=np.float32)
                if normalize is not None:
                    shape_in, raw = raw.shape, np.asarray(normalize(raw), dtype=np.float32)
                    if raw.shape != shape_in:
                        raise PredictionInputError(f"normalize changed the block shape {shape_in} to {raw.shape}")
                x = torch.from_numpy(np.ascontiguousarray(raw))[None, None].to(device)
                with torch.autocast(device_type=device.type, enabled=amp):
                    logits = sliding_window_inference(
                        x, roi, sw_batch_size, model, overlap=overlap, mode=mode, sw_device=device, device=device
                    )
                if logits.shape[1] != out_channels or tuple(logits.shape[2:]) != raw.shape:
                    raise PredictionInputError(
                        f"model output shape {tuple(logits.shape)} does not match (1, {out_channels}) + {raw.shape}"
                    )
                core = tuple(slice(a - r.start, b - r.start) for (a, b), r in zip(starts_stops, read))
                probs = torch.sigmoid(logits[(0, slice(None)) + core].float()).cpu().numpy()
                if out_dtype == np.uint8:
                    probs = np.clip(np.rint(probs * 255.0), 0, 255).astype(np.uint8)
                out[(slice(None),) + tuple(slice(a, b) for a, b in starts_stops)] = probs
    finally:
        model.train(was_training)


def tmp_path_for(path: str | os.PathLike) -> str:
    """Where :func:`open_prediction_zarr` writes before :func:`finalize_zarr` moves it to ``path``."""
    return os.fspath(path) + ".tmp"


def _jsonable(value: Any) -> Any:
    """Attributes as plain JSON (numpy scalars/arrays, tuples and paths converted)."""
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, os.PathLike):
            return os.fspath(o)
        raise TypeError(f"attribute value {o!r} of type {type(o).__name__} is not JSON serialisable")

    return json.loads(json.dumps(value, default=default))


def open_prediction_zarr(
    path: str | os.PathLike,
    shape: Sequence[int],
    *,
    chunks: Sequence[int] | None = None,
    dtype: str | np.dtype = "float32",
    attrs: Mapping[str, Any] | None = None,
) -> zarr.Array:
    """Create an empty zarr v3 array (channels, z, y, x) at ``path + '.tmp'`` (an old one there is replaced).

    Fill it, then call ``finalize_zarr(tmp_path_for(path), path)``. ``attrs`` (JSON-able: voxel size,
    checkpoint, ...) go into the array attributes. Chunks default to (channels, 64, 64, 64) clipped to shape.
    Read it back with ``zarr.open_array(path, mode='r')``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise PredictionInputError(f"prediction shape must be (channels, z, y, x), got {shape}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise PredictionInputError(f"prediction dtype must be float32 or uint8, got {dtype}")
    if chunks is None:
        chunks = (shape[0],) + (DEFAULT_CHUNK,) * 3
    chunks = tuple(max(1, min(int(c), s)) for c, s in zip(chunks, shape))
    tmp = tmp_path_for(path)
    if os.path.lexists(tmp):
        shutil.rmtree(tmp) if os.path.isdir(tmp) and not os.path.islink(tmp) else os.remove(tmp)
    return zarr.create_array(
        store=tmp,
        shape=shape,
        chunks=chunks,
        dtype=np.dtype(dtype),
        fill_value=0,
        zarr_format=3,
        attributes=_jsonable(dict(attrs or {})),
        dimension_names=("c", "z", "y", "x"),
    )


def finalize_zarr(tmp_path: str | os.PathLike, final_path: str | os.PathLike) -> None:
    """Move a finished ``tmp_path`` to ``final_path``, replacing what was there.

    The old output is first renamed aside, then the new one renamed into place, then the old one deleted,
    so at no time is ``final_path`` a half-written array.
    """
    tmp, final = Path(tmp_path), Path(final_path)
    if not tmp.exists():
        raise InputError(f"no prediction to finalize at {tmp}")
    old = None
    if os.path.lexists(final):
        old = final.with_name(final.name + ".old")
        if os.path.lexists(old):
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
