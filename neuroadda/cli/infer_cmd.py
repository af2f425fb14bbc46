"""``neuroadda predict`` and ``neuroadda segment``."""

from __future__ import annotations

from neuroadda.cli.common import add_voxel_size, fraction, positive_int, unit_open


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict affinities for a volume into zarr",
                       description="Sliding-window prediction with Gaussian blending, streamed block by block into "
                                   "a zarr array (3, z, y, x) so volumes larger than memory go through.")
    p.add_argument("--checkpoint", required=True, help="backbone checkpoint (model.pt)")
    p.add_argument("--input", required=True, help="dataset name or PATH[:KEY] (default key: raw)")
    p.add_argument("--out", required=True, help="output zarr folder, e.g. affs.zarr")
    p.add_argument("--uint8", action="store_true", help="store probabilities as uint8 (x255) to save space")
    p.add_argument("--overlap", type=fraction, default=0.25, help="sliding-window overlap (default: %(default)s)")
    p.add_argument("--block-shape", nargs=3, type=positive_int, default=None, metavar=("Z", "Y", "X"),
                   help="core block read at a time (default: chosen to compute the fewest windows, at most ~16 M voxels read)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    add_voxel_size(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_predict)

    s = sub.add_parser("segment", help="agglomerate affinities into a segmentation (waterz)",
                       description="waterz agglomeration of predicted affinities; writes a uint64 zarr array.")
    s.add_argument("--affinities", required=True, help="affinities zarr written by 'neuroadda predict'")
    s.add_argument("--out", required=True, help="output zarr folder, e.g. seg.zarr")
    s.add_argument("--threshold", type=unit_open, default=None,
                   help="waterz merge threshold (default: the one the checkpoint chose on validation data)")
    s.add_argument("--fragments", choices=("watershed", "waterz"), default="watershed",
                   help="supervoxels to agglomerate: distance-transform watershed (default) or waterz's own")
    s.set_defaults(func=run_segment)


def run_predict(args) -> int:
    from neuroadda.inference.predict import predict_volume

    out = predict_volume(args.checkpoint, args.input, args.out, voxel_size=args.voxel_size,
                         dtype="uint8" if args.uint8 else "float32", block_shape=args.block_shape,
                         overlap=args.overlap, device=args.device, progress=not args.quiet)
    print(f"wrote affinities to {out}")
    return 0


def run_segment(args) -> int:
    from neuroadda.segmentation.pipeline import segment_zarr

    out, threshold = segment_zarr(args.affinities, args.out, threshold=args.threshold,
                                  fragments=None if args.fragments == "waterz" else "watershed")
    print(f"wrote segmentation to {out} (waterz threshold {threshold:.3f})")
    return 0
