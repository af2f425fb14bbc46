"""``neuroadda predict`` and ``neuroadda segment``."""

from __future__ import annotations

from neuroadda.cli.common import MODEL_KINDS, VOLUME_FORMATS, add_voxel_size, fraction, positive_int, unit_open
from neuroadda.vocab import DEFAULT_FRAGMENTS, FRAGMENTS


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict affinities for a volume into zarr",
                       description="Sliding-window prediction with Gaussian blending, streamed block by block into "
                                   "a zarr array (3, z, y, x) so volumes larger than memory go through.")
    p.add_argument("--checkpoint", required=True, help=f"model: {MODEL_KINDS}")
    p.add_argument("--input", required=True,
                   help=f"{VOLUME_FORMATS} (default key: raw); the whole volume is predicted (no held-out slab)")
    p.add_argument("--out", required=True, help="output zarr folder, e.g. affs.zarr (OME-Zarr with a multiscale "
                                                "pyramid with --block-size)")
    p.add_argument("--uint8", action="store_true", help="store probabilities as uint8 (x255) to save space")
    p.add_argument("--overlap", type=fraction, default=0.25, help="sliding-window overlap (default: %(default)s)")
    p.add_argument("--block-shape", nargs=3, type=positive_int, default=None, metavar=("Z", "Y", "X"),
                   help="core block read at a time "
                        "(default: chosen to compute the fewest windows, at most ~16 M voxels read)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    add_voxel_size(p)
    add_blockwise(p, "predict")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_predict)

    s = sub.add_parser("segment", help="agglomerate affinities into a segmentation (waterz)",
                       description="waterz agglomeration of predicted affinities; writes a uint64 zarr array.")
    s.add_argument("--affinities", required=True,
                   help="affinities written by 'neuroadda predict' (zarr, OME-Zarr, or HDF5 as PATH:KEY)")
    s.add_argument("--out", required=True, help="output zarr folder, e.g. seg.zarr (OME-Zarr with a multiscale "
                                                "pyramid with --block-size)")
    s.add_argument("--threshold", type=unit_open, default=None,
                   help="waterz merge threshold (default: the one the checkpoint chose on validation data)")
    s.add_argument("--fragments", choices=(*FRAGMENTS, "waterz"), default=DEFAULT_FRAGMENTS,
                   help="supervoxels to agglomerate: 'ascent' (default; the distance map climbed voxel by voxel, "
                        "which block-wise runs reproduce exactly), 'watershed' (seeded watershed on the same map) "
                        "or waterz's own (whole volume only)")
    add_blockwise(s, "segment")
    s.add_argument("--context", type=int, default=32,
                   help="with --block-size: voxels of affinities read around each block for its fragments; "
                        "'ascent' reads more where it must to stay exact (default: %(default)s)")
    s.add_argument("--agglomeration", choices=("mean", "threshold"), default="mean",
                   help="with --block-size: global waterz-style mean-affinity merging of the region graph (default), "
                        "or connected components of its edges below the threshold")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=run_segment)


def add_blockwise(p, verb: str) -> None:
    g = p.add_argument_group("block-wise on many workers (daisy)")
    g.add_argument("--block-size", nargs=3, type=int, default=None, metavar=("Z", "Y", "X"),
                   help=f"{verb} block by block with daisy workers (without it: one process, as before)")
    g.add_argument("--workers", type=int, default=None, help="worker processes or SLURM jobs (default: 1)")
    g.add_argument("--cluster", choices=("local", "slurm"), default=None,
                   help="local processes (default) or one SLURM job per worker (sbatch)")
    g.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                   help="extra sbatch argument for the worker jobs, e.g. --sbatch-arg=--gres=gpu:1 (repeatable)")
    g.add_argument("--work-dir", default=None, help="work files (default: OUT.work); a re-run resumes there")


def check_blockwise(args) -> None:
    from neuroadda.errors import InputError

    if args.block_size is None and (args.workers is not None or args.cluster is not None or args.sbatch_arg
                                    or args.work_dir is not None):
        raise InputError("--workers, --cluster, --sbatch-arg and --work-dir need --block-size")


def run_predict(args) -> int:
    check_blockwise(args)
    if args.block_size is not None:
        from neuroadda.workflows.predict_blockwise import predict_volume_blockwise

        summary = predict_volume_blockwise(
            args.checkpoint, args.input, args.out, block_size=args.block_size, workers=args.workers or 1,
            cluster=args.cluster or "local", sbatch_args=args.sbatch_arg, voxel_size=args.voxel_size,
            dtype="uint8" if args.uint8 else "float32", overlap=args.overlap, device=args.device,
            work_dir=args.work_dir, progress=not args.quiet)
        print(f"wrote affinities to {summary['out']} ({summary['blocks']} blocks)")
        return 0
    from neuroadda.workflows.predict import predict_volume

    out = predict_volume(args.checkpoint, args.input, args.out, voxel_size=args.voxel_size,
                         dtype="uint8" if args.uint8 else "float32", block_shape=args.block_shape,
                         overlap=args.overlap, device=args.device, progress=not args.quiet)
    print(f"wrote affinities to {out}")
    return 0


def run_segment(args) -> int:
    check_blockwise(args)
    if args.block_size is not None:
        from neuroadda.errors import InputError
        from neuroadda.workflows.segment_blockwise import segment_blockwise

        if args.fragments == "waterz":
            raise InputError("--block-size works with --fragments ascent or watershed, not waterz")
        s = segment_blockwise(args.affinities, args.out, block_size=args.block_size, threshold=args.threshold,
                              context=args.context, workers=args.workers or 1, cluster=args.cluster or "local",
                              sbatch_args=args.sbatch_arg, agglomeration=args.agglomeration,
                              fragments=args.fragments, work_dir=args.work_dir, progress=not args.quiet)
        print(f"wrote segmentation to {s['out']} (waterz threshold {s['threshold']:.3f}, {s['graph']['segments']} "
              f"segments from {s['graph']['fragments']} {s['fragments']} fragments in {s['blocks']} blocks; "
              f"context {s['contexts']['min']}-{s['contexts']['max']} voxels)")
        return 0
    from neuroadda.workflows.segment import segment_zarr

    out, threshold = segment_zarr(args.affinities, args.out, threshold=args.threshold,
                                  fragments=None if args.fragments == "waterz" else args.fragments)
    print(f"wrote segmentation to {out} (waterz threshold {threshold:.3f})")
    import sys

    import zarr

    if zarr.open_array(str(out), mode="r").attrs.get("learned") is False:
        print("warning: the checkpoint behind these affinities recorded learned: false (its validation VI was not "
              "clearly below one segment); this segmentation is unlikely to be useful", file=sys.stderr)
    return 0
