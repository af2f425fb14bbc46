"""Argument helpers shared by the subcommands."""

from __future__ import annotations

from neuroadda.report import write_json  # noqa: F401  (re-exported for the subcommands)


def add_voxel_size(p, help_text="(z, y, x) nm of the stored input, overriding card/attributes"):
    p.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"), default=None, help=help_text)


def table(rows: list[list], header: list[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
