"""``neuroadda`` command: one entry point, verb subcommands (nnU-Net style).

Bad input raises :class:`neuroadda.errors.NeuroAddaError`; it is printed as one line and the exit code is 2.
"""

from __future__ import annotations

import argparse
import sys

from neuroadda import __version__
from neuroadda.errors import NeuroAddaError


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``neuroadda CMD: error: ...``, exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from neuroadda.cli import (
        adapt_cmd,
        datasets_cmd,
        demo_cmd,
        evaluate_cmd,
        experiment_cmd,
        export_cmd,
        infer_cmd,
        select_cmd,
        study_cmd,
        train_cmd,
    )

    parser = Parser(
        prog="neuroadda",
        description="Active discriminative domain adaptation for connectomics: pick a source backbone, "
                    "annotate a few samples, fine-tune a 3D affinity UNet, segment with waterz, score by VI.")
    parser.add_argument("--version", action="version", version=f"neuroadda {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (demo_cmd, datasets_cmd, train_cmd, infer_cmd, evaluate_cmd, select_cmd, adapt_cmd, experiment_cmd,
                   study_cmd, export_cmd):
        module.register(sub)
    select_cmd.register_analysis(sub)
    return parser


def quiet_libraries() -> None:
    """Keep library chatter (Lightning tips, third-party deprecations) out of the user's terminal."""
    import logging
    import warnings

    # child loggers: Lightning resets its top-level logger's level when it is imported (lazily, later)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "pytorch_lightning.accelerators.cuda", "lightning_fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*The `srun` command is available on your system but is not used.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version (0) or a usage error (2, one line already printed)
        return int(e.code or 0)
    try:
        return int(args.func(args) or 0)
    except NeuroAddaError as e:
        print(f"neuroadda {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neuroadda {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
