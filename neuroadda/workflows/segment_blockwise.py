"""``neuroadda segment --block-size``: affinities -> segmentation block by block, for volumes past one machine.

Stages (each block-wise stage scheduled by daisy, see :mod:`.scheduler`):

1. ``fragments``: per block, the fragments of its core from the affinities of the core grown by ``context``
   voxels (``WORK/fragments.zarr``, uint64), the block's own region-graph edges and the boundary slabs of its
   faces (``WORK/blocks/<index>.npz``). ``ascent`` fragments (default, :mod:`..segmentation.ascent`) are exact:
   a block whose read is too small to prove it reads more context until it is, and the pieces of a fragment
   that crosses faces are recorded as joins. ``watershed`` fragments are the whole-volume default's seeded
   watershed, named by seed: close to the whole-volume ones, exact only where the context holds the volume.
2. ``faces``: per block, the edges across its three lower faces, from its own and its neighbours' slabs, and
   its joins resolved to piece names (``WORK/faces/<index>.npz``).
3. ``graph`` (one process): joins -> fragments (union-find), all edges -> one region-adjacency graph of sums
   and counts (a few bytes per fragment pair: it fits one machine when the voxels do not) -> waterz-style
   mean-affinity agglomeration (:func:`..segmentation.graph.mean_affinity_agglomeration`;
   ``agglomeration="threshold"``: connected components of the edges below the threshold) -> a lookup table
   piece -> segment id, numbered 1..k.
4. ``relabel``: per block, pieces -> segment ids into the output OME-Zarr (written at ``OUT.tmp``, renamed to
   ``OUT`` when complete), then its multiscale pyramid level by level (window modes: no new ids; :mod:`.pyramid`).

With ``ascent`` fragments the result is the whole-volume ``segment --fragments ascent`` result exactly (up to
waterz's float32 running means on ties), for any block size and context.

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
    block_ascent,
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
    join_pieces,
    mean_affinity_agglomeration,
    threshold_components,
)
from neuroadda.vocab import DEFAULT_FRAGMENTS, FRAGMENTS, TWO_D
from neuroadda.workflows.pyramid import reset_pyramid, stage_names, write_pyramid
from neuroadda.workflows.scheduler import Cluster, all_blocks, block_info, reset_stage, run_stage, stage_stats
from neuroadda.workflows.segment import open_affinities

AGGLOMERATIONS = ("mean", "threshold")
FORMAT = 3  # bump when the work files change meaning


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

    def __init__(self, affinities: str, work: Path, shape, context: int, per_slice: bool, method: str):
        self.affinities, self.work, self.shape = affinities, str(work), tuple(shape)
        self.context, self.per_slice, self.method = context, per_slice, method
        self._arrays = None

    def __getstate__(self):
        return {**self.__dict__, "_arrays": None}

    def _read(self, affs, box, context):
        vshape = self.shape[1:]
        read = tuple(slice(max(0, s.start - context), min(n, s.stop + context)) for s, n in zip(box, vshape))
        if self.per_slice and self.method == "ascent":
            read = (box[0],) + read[1:]  # 2-D fragments need no z context
        return read, as_float_affinities(affs[(slice(None),) + read])

    def __call__(self, info) -> dict:
        if self._arrays is None:
            self._arrays = (open_array(*split_spec(self.affinities)),
                            zarr.open_array(os.path.join(self.work, "fragments.zarr"), mode="r+"))
        affs, frags = self._arrays
        context, joins = self.context, np.zeros((0, 2), np.uint64)
        while True:
            read, a = self._read(affs, info.box, context)
            if self.method == "watershed":
                frag = block_fragments(a, read, info.box, self.shape[1:], per_slice=self.per_slice)
                break
            got = block_ascent(a, read, info.box, self.shape[1:], per_slice=self.per_slice)
            if not isinstance(got, int):
                frag, joins = got
                break
            context = max(int(got), context + 1)  # the read was too small to prove the fragments exact
        frags[info.box] = frag
        a = a[(slice(None),) + tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(info.box, read))]
        pairs, sums, counts = core_edges(frag, a)
        save_npz(Path(self.work) / "blocks" / f"{info.index}.npz", pairs=pairs, sums=sums, counts=counts,
                  ids=np.unique(frag), joins=joins, **boundary_slabs(frag, a))
        return {"context": int(context)}


class _Faces:
    """Stage 2 for one block: edges with its lower neighbour along each axis, and its joins resolved."""

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
        save_npz(Path(self.work) / "faces" / f"{info.index}.npz", pairs=pairs, sums=sums, counts=counts,
                 joins=self._resolve(own["joins"]))

    def _resolve(self, joins: np.ndarray) -> np.ndarray:
        """(piece, global voxel) joins -> (piece, the piece holding that voxel), read from the fragments."""
        if len(joins) == 0:
            return np.zeros((0, 2), np.uint64)
        pos = np.unravel_index(joins[:, 1].astype(np.int64), self.shape)
        box = tuple(slice(int(p.min()), int(p.max()) + 1) for p in pos)
        frags = np.asarray(zarr.open_array(os.path.join(self.work, "fragments.zarr"), mode="r")[box])
        other = frags[tuple(p - b.start for p, b in zip(pos, box))]
        return np.stack([joins[:, 0], other], axis=1).astype(np.uint64)


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
    holds every piece id (sorted), ``<key>.lut.npy`` the segment id of each."""
    g = work / "graph"
    g.mkdir(exist_ok=True)
    stats_path = g / f"{key}.json"
    if stats_path.exists():
        return json.loads(stats_path.read_text())
    t0 = time.perf_counter()
    ids, parts, joins = [], [], []
    for info in infos:
        with np.load(work / "blocks" / f"{info.index}.npz") as b:
            ids.append(b["ids"])
            parts.append((b["pairs"], b["sums"], b["counts"]))
        with np.load(work / "faces" / f"{info.index}.npz") as f:
            parts.append((f["pairs"], f["sums"], f["counts"]))
            joins.append(f["joins"])
    ids = np.unique(np.concatenate(ids))
    fragment = join_pieces(len(ids), *(np.searchsorted(ids, j) for j in np.concatenate(joins).T))
    n = int(fragment.max()) + 1 if len(ids) else 0
    pairs = np.concatenate([p[0] for p in parts]).reshape(-1, 2)
    u, v = (fragment[np.searchsorted(ids, pairs[:, k])].astype(np.uint64) for k in (0, 1))
    keep = u != v  # pieces of one fragment: no edge between them
    pairs, sums, counts = sum_edges(np.stack([np.minimum(u, v), np.maximum(u, v)], axis=1)[keep],
                                    np.concatenate([p[1] for p in parts])[keep],
                                    np.concatenate([p[2] for p in parts])[keep])  # a pair seen by several blocks
    del parts
    u, v = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    if agglomeration == "mean":
        roots = mean_affinity_agglomeration(n, u, v, sums, counts, threshold)
    else:
        roots = threshold_components(n, u, v, edge_scores(sums, counts), threshold)
    lut = consecutive_labels(roots[fragment]) if len(ids) else np.zeros(0, np.uint64)
    for name, arr in (("ids", ids), (f"{key}.lut", lut)):
        with atomic_path(g / f"{name}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, arr)
    stats = {"pieces": int(len(ids)), "fragments": n, "edges": int(len(u)),
             "segments": int(lut.max()) if len(ids) else 0, "seconds": time.perf_counter() - t0}
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
                      agglomeration: str = "mean", fragments: str = DEFAULT_FRAGMENTS,
                      work_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Segment the (3, z, y, x) affinities at ``affinities`` into an OME-Zarr at ``out`` block by block.

    ``threshold`` defaults to the one ``neuroadda predict`` recorded; ``context`` voxels around each block feed
    its fragments (``ascent`` reads more where it must); work files live in ``work_dir`` (default
    ``OUT.work``). Returns a summary dict (counts, seconds and peak worker RSS per stage, contexts read)."""
    spec = str(affinities)
    affs, threshold = open_affinities(spec, threshold)
    shape = tuple(int(s) for s in affs.shape)
    block = check_block_size(block_size)
    if int(context) != context or context < 0:
        raise InputError(f"context must be a non-negative integer (voxels), got {context}")
    if fragments not in FRAGMENTS:
        raise InputError(f"fragments must be one of {', '.join(FRAGMENTS)} block-wise, got {fragments!r}")
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
                         "block": list(block), "context": int(context), "per_slice": per_slice,
                         "fragments": fragments}, note)
    infos = all_blocks(vshape, block)
    note(f"segment: {'x'.join(map(str, vshape))} voxels in {len(infos)} blocks of {'x'.join(map(str, block))} "
         f"({fragments} fragments, context {context}), {clus.workers} {clus.kind} worker(s); work files in {work}")

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
    run_stage("fragments", vshape, block, _Fragments(aff_spec, work, shape, int(context), per_slice, fragments),
              work_dir=work, cluster=clus, progress=progress)
    run_stage("faces", vshape, block, _Faces(work, vshape, block), work_dir=work, cluster=clus, progress=progress)

    key = f"{agglomeration}-{float(threshold):.6g}"
    note(f"segment: global {agglomeration} agglomeration at threshold {float(threshold):.3g}")
    graph = _global_graph(work, infos, float(threshold), agglomeration, key)
    note(f"segment: {graph['pieces']} pieces -> {graph['fragments']} fragments, {graph['edges']} edges -> "
         f"{graph['segments']} segments ({graph['seconds']:.1f} s)")

    tmp = Path(tmp_path_for(out))
    vs = affs.attrs.get("voxel_size_nm") or [1.0, 1.0, 1.0]
    attrs = {k: affs.attrs[k] for k in ("voxel_size_nm", "input", "checkpoint", "labels_kind") if k in affs.attrs}
    attrs.update({"threshold": float(threshold), "affinities": spec, "block_size": list(block),
                  "context": int(context), "agglomeration": agglomeration, "fragments": fragments, "graph": key})
    if not (tmp / "zarr.json").exists() or zarr.open_group(str(tmp), mode="r").attrs.get("graph") != key:
        reset_stage(work, "relabel")
        reset_pyramid(work, "relabel-pyramid")
        create_image(tmp, vshape, np.uint64, voxel_size_nm=vs, chunks=output_chunks(block, vshape), attrs=attrs)
    run_stage("relabel", vshape, block, _Relabel(work, key, str(tmp / "0")), work_dir=work, cluster=clus,
              progress=progress)
    levels = write_pyramid(tmp, labels=True, work_dir=work, cluster=clus, name="relabel-pyramid", progress=progress)
    finalize_zarr(tmp, out)  # a later run finds no OUT.tmp, so it starts the relabel stage afresh
    summary = {"out": str(out), "threshold": float(threshold), "blocks": len(infos), "block_size": list(block),
               "fragments": fragments, "workers": clus.workers, "cluster": clus.kind, "graph": graph, "levels": levels,
               "work_dir": str(work), "stages": {}}
    for stage in ("fragments", "faces", "relabel", "pyramid"):
        st = stage_stats(work, stage) if stage != "pyramid" else \
            [s for name in stage_names("relabel-pyramid") for s in stage_stats(work, name)]
        summary["stages"][stage] = {"block_seconds": sum(s["seconds"] for s in st),
                                    "peak_rss_bytes": max((s["peak_rss_bytes"] for s in st), default=0)}
    contexts = [s["context"] for s in stage_stats(work, "fragments") if "context" in s]
    summary["contexts"] = {"min": min(contexts, default=int(context)), "max": max(contexts, default=int(context)),
                           "grown_blocks": sum(c > int(context) for c in contexts)}
    return summary
