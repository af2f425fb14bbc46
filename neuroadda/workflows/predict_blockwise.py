"""``neuroadda predict --block-size``: affinities block by block on daisy workers (local processes or SLURM jobs,
one GPU each when given), into an OME-Zarr image (c, z, y, x).

Each worker loads the backbone and opens the volume once, then predicts the blocks daisy hands it exactly as
:func:`neuroadda.inference.blockwise.predict_blockwise` does (reads the whole-volume windows touching the core),
so the result equals the one-process prediction. The normaliser is fitted once here and shipped to the workers.
Output is written at ``OUT.tmp`` and renamed to ``OUT`` when every block is done; a killed run started again
skips the finished blocks.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import zarr

from neuroadda.data.ome import create_image
from neuroadda.errors import InputError
from neuroadda.workflows.scheduler import Cluster, all_blocks, reset_stage, run_stage, stage_stats
from neuroadda.workflows.segment_blockwise import check_block_size, output_chunks


class _PredictBlocks:
    """One block of prediction (picklable: the model and volume are opened in the worker, once)."""

    def __init__(self, checkpoint, input_spec, voxel_size, resample_to, normalizer, out_array, device, overlap):
        self.args = (str(checkpoint), input_spec, voxel_size, resample_to)
        self.normalizer, self.out_array, self.device, self.overlap = normalizer, out_array, device, overlap
        self._state = None

    def __getstate__(self):
        return {**self.__dict__, "_state": None}

    def _open(self):
        import torch

        from neuroadda.data.volume import open_volume
        from neuroadda.models.checkpoint import load_backbone

        checkpoint, spec, voxel_size, resample_to = self.args
        net, meta = load_backbone(checkpoint)
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        net.to(device).eval()
        vol = open_volume(spec, labels_key=None, voxel_size=voxel_size, resample_to=resample_to)
        self._state = (net, meta, vol.raw, zarr.open_array(self.out_array, mode="r+"), device)

    def __call__(self, info) -> None:
        import torch

        from neuroadda.inference.blockwise import block_ranges, predict_block

        if self._state is None:
            self._open()
        net, meta, raw, out, device = self._state
        roi = tuple(int(r) for r in meta["patch_size"])
        with torch.inference_mode():
            predict_block(net, raw, out, block_ranges(info.box, raw.shape, roi, self.overlap), roi=roi,
                          out_channels=3, sw_batch_size=2, overlap=self.overlap, mode="gaussian", device=device,
                          normalize=self.normalizer)


def predict_volume_blockwise(checkpoint: str | Path, input_spec: str, out: str | Path, *, block_size,
                             workers: int = 1, cluster: str = "local", sbatch_args=(), voxel_size=None,
                             dtype: str = "float32", overlap: float = 0.25, device=None,
                             work_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Affinities of ``input_spec`` as :func:`neuroadda.workflows.predict.predict_volume` computes them, with
    one daisy block per ``block_size`` core. Returns a summary (blocks, seconds and peak RSS per worker)."""
    from neuroadda.report import finalize_zarr, tmp_path_for
    from neuroadda.workflows.predict import prediction_input

    block = check_block_size(block_size)
    if dtype not in ("float32", "uint8"):
        raise InputError(f"dtype must be float32 or uint8, got {dtype}")
    if not 0 <= overlap < 1:
        raise InputError(f"overlap must be in [0, 1), got {overlap}")
    clus = Cluster(cluster, int(workers), tuple(sbatch_args))
    clus.check()
    bb, vol, normalizer, attrs, stored = prediction_input(checkpoint, input_spec, voxel_size=voxel_size)
    target_vs = vol.voxel_size if vol is not stored else None
    attrs.update({"block_size": list(block), "overlap": overlap, "dtype": dtype})
    work = Path(work_dir) if work_dir is not None else Path(str(out) + ".work")
    tmp = Path(tmp_path_for(out))
    fresh = not (tmp / "zarr.json").exists() or \
        json.dumps(dict(zarr.open_group(str(tmp), mode="r").attrs).get("run")) != json.dumps(_jsonable(attrs))
    if fresh:  # no partial output of this very run: start over
        shutil.rmtree(work, ignore_errors=True)
        reset_stage(work, "predict")
        shape = (3,) + tuple(vol.shape)
        create_image(tmp, shape, np.dtype(dtype), voxel_size_nm=vol.voxel_size, channel_axis=True,
                     chunks=(3,) + output_chunks(block, vol.shape), attrs={**attrs, "run": _jsonable(attrs)})
    if progress:
        print(f"predict: {'x'.join(map(str, vol.shape))} voxels in {len(all_blocks(vol.shape, block))} blocks of "
              f"{'x'.join(map(str, block))}, {clus.workers} {clus.kind} worker(s)", file=sys.stderr, flush=True)
    fn = _PredictBlocks(checkpoint if Path(checkpoint).is_absolute() else Path(checkpoint).resolve(), input_spec,
                        voxel_size, target_vs, normalizer, str(tmp.resolve() / "0"), device, overlap)
    run_stage("predict", vol.shape, block, fn, work_dir=work, cluster=clus, progress=progress)
    stats = stage_stats(work, "predict")
    if target_vs is not None:  # the model saw another grid: bring the affinities back to the input's own
        from neuroadda.inference.regrid import regrid

        back = Path(str(tmp) + ".back")
        arr = create_image(back, (3,) + tuple(stored.shape), np.dtype(dtype), voxel_size_nm=stored.voxel_size,
                           channel_axis=True, chunks=(3,) + output_chunks(block, stored.shape), attrs=attrs)
        regrid(zarr.open_array(str(tmp / "0"), mode="r"), vol.voxel_size, arr, stored.voxel_size)
        shutil.rmtree(tmp)
        back.rename(tmp)
    finalize_zarr(tmp, out)
    return {"out": str(out), "blocks": len(stats), "block_seconds": sum(s["seconds"] for s in stats),
            "peak_rss_bytes": max((s["peak_rss_bytes"] for s in stats), default=0)}


def _jsonable(d: dict) -> dict:
    from neuroadda.inference.blockwise import _jsonable as plain

    return plain(d)
