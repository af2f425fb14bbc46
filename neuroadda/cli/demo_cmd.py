"""``neuroadda demo``: the method end to end on the bundled crops with the shipped small backbones."""

from __future__ import annotations


def register(sub) -> None:
    d = sub.add_parser("demo", help="run the whole method on the bundled real EM crops (minutes, CPU)",
                       description="Select the source backbone for the bundled neuroproof target by MMD², pick 4 "
                                   "samples by median uncertainty, fine-tune from the chosen backbone and from "
                                   "scratch on them, segment and score the held-out region by VI. Uses the small "
                                   "backbones shipped in datasets/backbones (--retrain rebuilds them). Writes "
                                   "figures and demo.json to --out.")
    d.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    d.add_argument("--config", default=None, help="demo config YAML (default: configs/demo.yaml)")
    d.add_argument("--retrain", action="store_true",
                   help="first rebuild the shipped backbones (pretrain one per source, a few minutes each on a CPU)")
    d.add_argument("--resume", action="store_true",
                   help="keep what an earlier demo left in --out and skip its finished steps (default: start over)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=run)


def run(args) -> int:
    from neuroadda.demo import run_demo, summary_text

    summary = run_demo(args.out, config=args.config, retrain=args.retrain, fresh=not args.resume,
                       progress=not args.quiet)
    print(summary_text(summary, args.out))
    return 0
