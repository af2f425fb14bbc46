"""``neuroadda segment --block-size``: affinities -> segmentation block by block, for volumes past one machine.

Stages (each block-wise stage scheduled by daisy, see :mod:`.scheduler`):

1. ``fragments``: per block, watershed fragments of the core grown by ``context`` voxels, cropped to the core
   and named after their seeds' global positions (``WORK/fragments.zarr``, uint64), the block's own
   region-graph edges and the boundary slabs of its faces (``WORK/blocks/<index>.npz``).
2. ``faces``: per block, the edges across its three lower faces, from its own and its neighbours' slabs
   (``WORK/faces/<index>.npz``).
3. ``graph`` (one process): all edges -> one region-adjacency graph of sums and counts (a few bytes per
   fragment pair: it fits one machine when the voxels do not) -> waterz-style mean-affinity agglomeration
   (:func:`..segmentation.graph.mean_affinity_agglomeration`; ``agglomeration="threshold"``: connected
   components of the edges below the threshold) -> a lookup table fragment -> segment id, numbered 1..k.
4. ``relabel``: per block, fragments -> segment ids into the output OME-Zarr (written at ``OUT.tmp``, renamed to
   ``OUT`` when complete).

Edge store: one ``.npz`` per block, written to a temporary name and renamed. Any number of workers write at
once without locks or a database server (SQLite's locking is unreliable on the network file systems clusters
share), a re-run block replaces its own file, and the graph stage reads the files in block order, so the
result does not depend on which worker ran what. A killed run started again skips finished blocks; a run with
other settings in the same work folder starts over, except that a new threshold reuses fragments and edges.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import zarr

from neuroadda.data.io import open_array, split_spec
from neuroadda.data.ome import create_image
from neuroadda.errors import InputError
from neuroadda.report import atomic_path, finalize_zarr, save_npz, tmp_path_for, write_text
from neuroadda.segmentation.blockwise import (
    as_float_affinities,
    block_fragments,
    boundary_slabs,
    concat_edges,
    core_edges,
    face_edges,
    sum_edges,
)
from neuroadda.segmentation.graph import (
    consecutive_labels,
    edge_scores,
    mean_affinity_agglomeration,
    threshold_components,
)
from neuroadda.vocab import TWO_D
from neuroadda.workflows.scheduler import Cluster, all_blocks, block_info, reset_stage, run_stage, stage_stats
from neuroadda.workflows.segment import open_affinities

AGGLOMERATIONS = ("mean", "threshold")
FORMAT = 2  # bump when the work files change meaning


def check_block_size(block_size) -> tuple[int, int, int]:
    try:
        block = tuple(int(b) for b in block_size)
    except (TypeError, ValueError):
        raise InputError(f"block size must be 3 positive integers (z y x), got {block_size!r}") from None
    if len(block) != 3 or min(block) < 1:
        raise InputError(f"block size must be 3 positive integers (z y x), got {block_size!r}")
    return block  # type: ignore[return-value]


def output_chunks(block, shape) -> tuple[int, ...]:
    """64 per axis where the block is a multiple of 64 (else the block), clipped to the volume: every block
    writes whole chunks, so no two workers write the same chunk."""
    return tuple(min(64 if b % 64 == 0 else b, s) for b, s in zip(block, shape))


class _Fragments:
    """Stage 1 for one block (picklable; opens its arrays lazily in the worker)."""

    def __init__(self, affinities: str, work: Path, shape, context: int, per_slice: bool):
        self.affinities, self.work, self.shape = affinities, str(work), tuple(shape)
        self.context, self.per_slice = context, per_slice
        self._arrays = None

    def __getstate__(self):
        return {**self.__dict__, "_arrays": None}

    def __call__(self, info) -> None:
        if self._arrays is None:
            self._arrays = (open_array(*split_spec(self.affinities)),
                            zarr.open_array(os.path.join(self.work, "fragments.zarr"), mode="r+"))
        affs, frags = self._arrays
        read = tuple(slice(max(0, s.start - self.context), min(n, s.stop + self.context))
                     for s, n in zip(info.box, self.shape[1:]))
        core = tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(info.box, read))
        a = as_float_affinities(affs[(slice(None),) + read])
        frag = block_fragments(a, read, info.box, self.shape[1:], per_slice=self.per_slice)
        frags[info.box] = frag
        a = a[(slice(None),) + core]
        pairs, sums, counts = core_edges(frag, a)
        save_npz(Path(self.work) / "blocks" / f"{info.index}.npz", pairs=pairs, sums=sums, counts=counts,
                  ids=np.unique(frag), **boundary_slabs(frag, a))


class _Faces:
    """Stage 2 for one block: edges with its lower neighbour along each axis."""

    def __init__(self, work: Path, shape, block):
        self.work, self.shape, self.block = str(work), tuple(shape), tuple(block)

    def __call__(self, info) -> None:
        blocks = Path(self.work) / "blocks"
        own = np.load(blocks / f"{info.index}.npz")
        parts = []
        for c in range(3):
            if info.grid_pos[c] == 0:
                continue
            pos = list(info.grid_pos)
            pos[c] -= 1
            lower = block_info(pos, self.shape, self.block).index
            last = np.load(blocks / f"{lower}.npz")[f"last{c}"]
            parts.append(face_edges(own[f"first{c}"], last, own[f"aff{c}"]))
        pairs, sums, counts = concat_edges(parts)
        save_npz(Path(self.work) / "faces" / f"{info.index}.npz", pairs=pairs, sums=sums, counts=counts)


class _Relabel:
    """Stage 4 for one block: fragment ids -> segment ids through the graph stage's lookup table."""

    def __init__(self, work: Path, key: str, out_array: str):
        self.work, self.key, self.out_array = str(work), key, out_array
        self._arrays = None

    def __getstate__(self):
        return {**self.__dict__, "_arrays": None}

    def __call__(self, info) -> None:
        if self._arrays is None:
            g = Path(self.work) / "graph"
            self._arrays = (zarr.open_array(os.path.join(self.work, "fragments.zarr"), mode="r"),
                            np.load(g / "ids.npy", mmap_mode="r"), np.load(g / f"{self.key}.lut.npy", mmap_mode="r"),
                            zarr.open_array(self.out_array, mode="r+"))
        frags, ids, lut, out = self._arrays
        names, inverse = np.unique(np.asarray(frags[info.box]), return_inverse=True)
        out[info.box] = np.asarray(lut[np.searchsorted(ids, names)])[inverse].reshape(info.box_shape)


def _global_graph(work: Path, infos, threshold: float, agglomeration: str, key: str) -> dict:
    """Stage 3: the lookup table (and its stats) for ``key``, computed unless already on disk. ``ids.npy``
    holds every fragment id (sorted), ``<key>.lut.npy`` the segment id of each."""
    g = work / "graph"
    g.mkdir(exist_ok=True)
    stats_path = g / f"{key}.json"
    if stats_path.exists():
        return json.loads(stats_path.read_text())
    t0 = time.perf_counter()
    ids, parts = [], []
    for info in infos:
        with np.load(work / "blocks" / f"{info.index}.npz") as b:
            ids.append(b["ids"])
            parts.append((b["pairs"], b["sums"], b["counts"]))
        with np.load(work / "faces" / f"{info.index}.npz") as f:
            parts.append((f["pairs"], f["sums"], f["counts"]))
    ids = np.unique(np.concatenate(ids))
    pairs, sums, counts = sum_edges(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                                    np.concatenate([p[2] for p in parts]))  # a pair seen by several blocks
    del parts
    u, v = np.searchsorted(ids, pairs[:, 0]), np.searchsorted(ids, pairs[:, 1])
    if agglomeration == "mean":
        roots = mean_affinity_agglomeration(len(ids), u, v, sums, counts, threshold)
    else:
        roots = threshold_components(len(ids), u, v, edge_scores(sums, counts), threshold)
    lut = consecutive_labels(roots)
    for name, arr in (("ids", ids), (f"{key}.lut", lut)):
        with atomic_path(g / f"{name}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, arr)
    stats = {"fragments": int(len(ids)), "edges": int(len(u)), "segments": int(lut.max()) if len(ids) else 0,
             "seconds": time.perf_counter() - t0}
    write_text(stats_path, json.dumps(stats))
    return stats


def _prepare_work(work: Path, settings: dict, note) -> None:
    """Keep the work folder only if it was made with the same settings; else start it afresh."""
    path = work / "settings.json"
    if work.exists() and (not path.exists() or json.loads(path.read_text()) != settings):
        note(f"{work}: made with other settings or by something else; starting it afresh")
        shutil.rmtree(work)
    for sub in ("blocks", "faces", "graph"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings))


def segment_blockwise(affinities: str | Path, out: str | Path, *, block_size, threshold: float | None = None,
                      context: int = 32, workers: int = 1, cluster: str = "local", sbatch_args=(),
                      agglomeration: str = "mean", work_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Segment the (3, z, y, x) affinities at ``affinities`` into an OME-Zarr at ``out`` block by block.

    ``threshold`` defaults to the one ``neuroadda predict`` recorded; ``context`` voxels around each block feed
    its watershed; work files live in ``work_dir`` (default ``OUT.work``). Returns a summary dict (counts,
    seconds and peak worker RSS per stage)."""
    spec = str(affinities)
    affs, threshold = open_affinities(spec, threshold)
    shape = tuple(int(s) for s in affs.shape)
    block = check_block_size(block_size)
    if int(context) != context or context < 0:
        raise InputError(f"context must be a non-negative integer (voxels), got {context}")
    if agglomeration not in AGGLOMERATIONS:
        raise InputError(f"agglomeration must be one of {', '.join(AGGLOMERATIONS)}, got '{agglomeration}'")
    out = Path(out)
    if out.resolve() == split_spec(spec)[0].resolve():
        raise InputError(f"{out}: the output would overwrite the affinities")
    clus = Cluster(cluster, int(workers), tuple(sbatch_args))
    clus.check()

    def note(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    vshape = shape[1:]
    work = Path(work_dir) if work_dir is not None else Path(str(out) + ".work")
    aff_path, key_ = split_spec(spec)
    aff_spec = str(aff_path.resolve()) + (f":{key_}" if key_ else "")
    per_slice = affs.attrs.get("labels_kind") == TWO_D
    _prepare_work(work, {"format": FORMAT, "affinities": aff_spec, "shape": list(shape), "dtype": str(affs.dtype),
                         "block": list(block), "context": int(context), "per_slice": per_slice}, note)
    infos = all_blocks(vshape, block)
    note(f"segment: {'x'.join(map(str, vshape))} voxels in {len(infos)} blocks of {'x'.join(map(str, block))} "
         f"(context {context}), {clus.workers} {clus.kind} worker(s); work files in {work}")

    frag_path = work / "fragments.zarr"
    if not frag_path.exists():
        for stage in ("fragments", "faces"):
            reset_stage(work, stage)
        shutil.rmtree(work / "graph", ignore_errors=True)  # made from fragments that are gone
        (work / "graph").mkdir()
        from zarr.codecs import BloscCodec

        zarr.create_array(store=str(frag_path), shape=vshape, chunks=tuple(min(b, s) for b, s in zip(block, vshape)),
                          dtype=np.uint64, fill_value=0, zarr_format=3,
                          compressors=BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"))
    run_stage("fragments", vshape, block, _Fragments(aff_spec, work, shape, int(context), per_slice),
              work_dir=work, cluster=clus, progress=progress)
    run_stage("faces", vshape, block, _Faces(work, vshape, block), work_dir=work, cluster=clus, progress=progress)

    key = f"{agglomeration}-{float(threshold):.6g}"
    note(f"segment: global {agglomeration} agglomeration at threshold {float(threshold):.3g}")
    graph = _global_graph(work, infos, float(threshold), agglomeration, key)
    note(f"segment: {graph['fragments']} fragments, {graph['edges']} edges -> {graph['segments']} segments "
         f"({graph['seconds']:.1f} s)")

    tmp = Path(tmp_path_for(out))
    vs = affs.attrs.get("voxel_size_nm") or [1.0, 1.0, 1.0]
    attrs = {k: affs.attrs[k] for k in ("voxel_size_nm", "input", "checkpoint", "labels_kind") if k in affs.attrs}
    attrs.update({"threshold": float(threshold), "affinities": spec, "block_size": list(block),
                  "context": int(context), "agglomeration": agglomeration, "graph": key})
    if not (tmp / "zarr.json").exists() or zarr.open_group(str(tmp), mode="r").attrs.get("graph") != key:
        reset_stage(work, "relabel")
        create_image(tmp, vshape, np.uint64, voxel_size_nm=vs, chunks=output_chunks(block, vshape), attrs=attrs)
    run_stage("relabel", vshape, block, _Relabel(work, key, str(tmp / "0")), work_dir=work, cluster=clus,
              progress=progress)
    finalize_zarr(tmp, out)  # a later run finds no OUT.tmp, so it starts the relabel stage afresh
    summary = {"out": str(out), "threshold": float(threshold), "blocks": len(infos), "block_size": list(block),
               "workers": clus.workers, "cluster": clus.kind, "graph": graph, "work_dir": str(work), "stages": {}}
    for stage in ("fragments", "faces", "relabel"):
        st = stage_stats(work, stage)
        summary["stages"][stage] = {"block_seconds": sum(s["seconds"] for s in st),
                                    "peak_rss_bytes": max((s["peak_rss_bytes"] for s in st), default=0)}
    return summary
