"""``neuroadda evaluate``: VI (bits) and adapted Rand of a segmentation against ground truth."""

from __future__ import annotations

from pathlib import Path

from neuroadda.cli.common import add_logger_arg, track_run
from neuroadda.vocab import LABELS_KINDS


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a segmentation: VI split/merge (bits), adapted Rand",
                       description="VI split = H(seg|gt), merge = H(gt|seg), in bits, ground-truth label 0 ignored; "
                                   "2d_instance_per_slice ground truth is scored slice by slice and averaged.")
    p.add_argument("--seg", required=True, help="segmentation PATH[:KEY] (zarr from 'neuroadda segment', HDF5, TIFF)")
    p.add_argument("--gt", required=True, help="ground truth: dataset name or PATH[:KEY] (default key: labels)")
    p.add_argument("--labels-kind", choices=LABELS_KINDS, default=None,
                   help="override the ground truth's labels kind (default: from its card or attributes)")
    p.add_argument("--baselines", action="store_true",
                   help="also score two trivial baselines: one segment, and connected components of thresholded raw")
    p.add_argument("--raw", default=None, help="raw image for --baselines (default: beside the ground truth)")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    add_logger_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from neuroadda.cli.common import table
    from neuroadda.data.io import split_spec
    from neuroadda.report import write_json
    from neuroadda.workflows.evaluate import evaluate

    result = evaluate(args.seg, args.gt, labels_kind=args.labels_kind, baselines=args.baselines, raw_spec=args.raw)
    rows = [("segmentation", result)] + list(result.get("baselines", {}).items())
    print(table([[name, f"{s['vi_split']:.4f}", f"{s['vi_merge']:.4f}", f"{s['vi']:.4f}", f"{s['adapted_rand']:.4f}"]
                 for name, s in rows], ["", "vi_split", "vi_merge", "vi (bits)", "adapted_rand"]))
    if args.json:
        write_json(Path(args.json), result)
    seg_path = split_spec(args.seg)[0]
    track_run(args.logger, Path(args.json).parent if args.json else seg_path.parent, f"evaluate-{seg_path.name}",
              {"seg": args.seg, "gt": args.gt, "labels_kind": result["labels_kind"]},
              {f"{name}/{k}": v for name, sc in rows for k, v in sc.items() if isinstance(v, (int, float))},
              tags=["evaluate"])
    return 0
