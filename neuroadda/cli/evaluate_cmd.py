"""``neuroadda evaluate``: VI (bits) and adapted Rand of a segmentation against ground truth."""

from __future__ import annotations

from pathlib import Path

from neuroadda.cli.common import add_logger_arg, track_run


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a segmentation: VI split/merge (bits), adapted Rand",
                       description="VI split = H(seg|gt), merge = H(gt|seg), in bits, ground-truth label 0 ignored; "
                                   "2d_instance_per_slice ground truth is scored slice by slice and averaged.")
    p.add_argument("--seg", required=True, help="segmentation PATH[:KEY] (zarr from 'neuroadda segment', HDF5, TIFF)")
    p.add_argument("--gt", required=True, help="ground truth: dataset name or PATH[:KEY] (default key: labels)")
    p.add_argument("--labels-kind", choices=("3d_instance", "2d_instance_per_slice"), default=None,
                   help="override the ground truth's labels kind (default: from its card or attributes)")
    p.add_argument("--baselines", action="store_true",
                   help="also score two trivial baselines: one segment, and connected components of thresholded raw")
    p.add_argument("--raw", default=None, help="raw image for --baselines (default: beside the ground truth)")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    add_logger_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from neuroadda.cli.common import table, write_json
    from neuroadda.data.io import open_array, split_spec
    from neuroadda.data.volume import open_labels
    from neuroadda.errors import InputError
    from neuroadda.metrics.vi import evaluate_segmentation

    spath, skey = split_spec(args.seg)
    seg_arr = open_array(spath, skey)
    if np.dtype(seg_arr.dtype).kind not in "iu":
        raise InputError(f"{args.seg}: a segmentation must be integer labels, got dtype {seg_arr.dtype}")
    seg_vs = seg_arr.attrs.get("voxel_size_nm")
    gt = open_labels(args.gt, resample_to=tuple(seg_vs) if seg_vs else None)
    if tuple(seg_arr.shape) != tuple(gt.labels.shape):
        raise InputError(f"{args.seg}: segmentation shape {tuple(seg_arr.shape)} does not match ground truth "
                         f"{gt.labels.name} shape {tuple(gt.labels.shape)}")
    gt_data = gt.labels.read((slice(None),) * 3)
    kind = args.labels_kind or gt.labels_kind
    try:
        scores = evaluate_segmentation(np.asarray(seg_arr[(slice(None),) * 3]), gt_data, labels_kind=kind)
    except ValueError as e:
        raise InputError(f"{gt.labels.name}: {e}") from None
    result = {"seg": args.seg, "gt": args.gt, "labels_kind": kind, "units": "bits", **scores}
    rows = [("segmentation", scores)]
    if args.baselines:
        from neuroadda.data.volume import is_dataset_name, open_volume
        from neuroadda.metrics.baselines import baseline_scores

        raw_spec = args.raw or (args.gt if is_dataset_name(args.gt) else str(split_spec(args.gt)[0]))
        raw = open_volume(raw_spec, labels_key=None, resample_to=tuple(seg_vs) if seg_vs else None).raw
        if raw.shape != gt.labels.shape:
            raise InputError(f"{raw.name}: raw shape {raw.shape} does not match ground truth {gt.labels.shape}")
        result["baselines"] = baseline_scores(raw.read((slice(None),) * 3), gt_data, labels_kind=kind)
        rows += list(result["baselines"].items())
    print(table([[name, f"{s['vi_split']:.4f}", f"{s['vi_merge']:.4f}", f"{s['vi']:.4f}", f"{s['adapted_rand']:.4f}"]
                 for name, s in rows], ["", "vi_split", "vi_merge", "vi (bits)", "adapted_rand"]))
    if args.json:
        write_json(Path(args.json), result)
    track_run(args.logger, Path(args.json).parent if args.json else Path(args.seg.split(":")[0]).parent,
              f"evaluate-{Path(args.seg.split(':')[0]).name}", {"seg": args.seg, "gt": args.gt, "labels_kind": kind},
              {f"{name}/{k}": v for name, sc in rows for k, v in sc.items()}, tags=["evaluate"])
    return 0
