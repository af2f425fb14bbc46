"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse

from neuroadda.vocab import LOGGERS

MODEL_KINDS = ("a checkpoint (model.pt), a bioimage.io package (folder or zip) or a TorchScript file with its "
               "sidecar YAML")
VOLUME_FORMATS = ("dataset name, PATH[:KEY] (HDF5, zarr/OME-Zarr, N5, precomputed, TIFF, .npy) or URL "
                  "(precomputed://..., n5://...)")


def _number(kind, test, what: str):
    """An argparse type: ``kind(text)`` that must pass ``test``; else one line saying what it must be."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    parse.__name__ = what
    return parse


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
at_least_4 = _number(int, lambda v: v >= 4, "an integer >= 4")
positive_float = _number(float, lambda v: v > 0, "a number > 0")
fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
unit_open = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")


def space_arg(text: str) -> str:
    """An argparse type for ``--space``: standardize | none | pca:K (K >= 1)."""
    import re

    if not re.fullmatch(r"standardize|none|pca:[1-9][0-9]*", text):
        raise argparse.ArgumentTypeError(f"must be standardize, none or pca:K (K >= 1), got '{text}'")
    return text


def add_voxel_size(p, help_text="(z, y, x) nm of the stored input, overriding card/attributes"):
    p.add_argument("--voxel-size", nargs=3, type=positive_float, metavar=("Z", "Y", "X"), default=None, help=help_text)


def add_label_zero(p) -> None:
    p.add_argument("--label-zero", choices=("boundary", "unlabelled"), default=None,
                   help="what label 0 of the training labels is: 'boundary' (0 separates objects; edges into it are "
                        "cuts) or 'unlabelled' (unknown; edges touching it are ignored). Default: the dataset card, "
                        "else the labels' label_zero attribute ('boundary' when absent)")


def table(rows: list[list], header: list[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def add_backbone_args(p) -> None:
    """The source-backbone options shared by ``select-source`` and ``adapt``."""
    p.add_argument("--backbone", action="append", default=[], metavar="SOURCE=MODEL",
                   help="the model of a source: a checkpoint, a bioimage.io package (folder or zip) or a TorchScript "
                        "file with its sidecar YAML (repeatable)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=MODEL",
                   help="one more candidate that is no --sources entry, e.g. another lab's model (any kind --backbone "
                        "takes; NAME is a label: MMD² reads it as the training data when it is a dataset or path, "
                        "else the source the model records; repeatable)")
    p.add_argument("--backbones", default=None, metavar="DIR",
                   help="folder with DIR/<source>/model.pt (as 'neuroadda pretrain --out DIR/<source>' writes), or "
                        "DIR/<source>.pt, DIR/<source>.zip, DIR/<source>/rdf.yaml")
    p.add_argument("--pretrain-missing", action="store_true",
                   help="pretrain a backbone for every source without one (into --backbones or OUT/backbones)")
    p.add_argument("--pretrain-config", default=None,
                   help="config for --pretrain-missing (default configs/pretrain.yaml)")


def backbones_from_args(args, sources: list[str], out) -> dict:
    """{candidate: model path} from --backbone/--backbones/--pretrain-missing/--pretrain-config, then --model;
    every model is loaded once here (a bad one is a one-line error before any work)."""
    from neuroadda.workflows.backbones import backbones_for, check_models, model_pairs

    models = model_pairs(args.model, sources)
    if not sources and not models:
        from neuroadda.errors import InputError

        raise InputError("no candidates: give --sources (with their backbones) or --model NAME=MODEL")
    found = backbones_for(sources, args.backbone, args.backbones, pretrain_missing=args.pretrain_missing,
                          pretrain_config=args.pretrain_config, out=out, progress=not getattr(args, "quiet", False)
                          ) if sources else {}
    return check_models({**found, **models})


def add_logger_arg(p, default: str = "none") -> None:
    p.add_argument("--logger", choices=LOGGERS, default=default,
                   help="also record this run with a tracking logger (wandb: offline without an API key; "
                        "default: %(default)s)")


def track_run(kind: str, out_dir, name: str, config: dict, metrics: dict, tags=()) -> None:
    """One short tracking run holding ``config`` and summary ``metrics`` (for selection and evaluation)."""
    if kind == "none":
        return
    from neuroadda.tracking import finish, log_summary, make_logger

    logger = make_logger(kind, out_dir, name=name, config=config, tags=tags)
    log_summary(logger, metrics)
    finish(logger)
