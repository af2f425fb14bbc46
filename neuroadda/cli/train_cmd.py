"""``neuroadda pretrain``."""

from __future__ import annotations

from neuroadda.cli.common import add_label_zero, add_voxel_size
from neuroadda.vocab import LOGGERS


def register(sub) -> None:
    p = sub.add_parser("pretrain", help="train a source backbone on one labelled volume",
                       description="Train a 3D affinity UNet on a labelled volume and write OUT/model.pt "
                                   "(config, dataset card, seed, code version and waterz threshold recorded).")
    p.add_argument("--source", required=True, help="dataset name or PATH[:KEY] (HDF5/zarr/TIFF; keys raw, labels)")
    p.add_argument("--labels", default=None, help="labels as a separate PATH[:KEY] (default: KEY 'labels' beside raw)")
    p.add_argument("--config", default=None, help="YAML config (default: configs/pretrain.yaml values)")
    p.add_argument("--out", default="runs/pretrain", help="output folder (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    p.add_argument("--seed", type=int, default=None, help="override seed")
    add_voxel_size(p)
    add_label_zero(p)
    p.add_argument("--logger", choices=LOGGERS, default=None,
                   help="override train.logger (wandb runs offline without an API key)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from neuroadda.config import default_config_dir, load_config
    from neuroadda.workflows.pretrain import pretrain

    config = args.config
    if config is None and (default_config_dir() / "pretrain.yaml").exists():
        config = default_config_dir() / "pretrain.yaml"
    cfg = load_config(config, overrides={"train.max_steps": args.max_steps, "seed": args.seed,
                                          "train.logger": args.logger})
    path = pretrain(args.source, cfg, args.out, labels=args.labels, voxel_size=args.voxel_size,
                    label_zero=args.label_zero, progress=not args.quiet)
    from neuroadda.models.checkpoint import load_backbone

    bb = load_backbone(path)
    print(f"wrote {path} (steps {bb.meta['steps']}, waterz threshold {bb.threshold:.2f} chosen on the "
          f"{bb.threshold_region['what']}"
          f"{'' if bb.learned is not False else '; NOT LEARNED: VI no better than one segment'})")
    return 0
