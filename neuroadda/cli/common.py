"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import json
import os
from pathlib import Path


def add_voxel_size(p, help_text="(z, y, x) nm of the stored input, overriding card/attributes"):
    p.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"), default=None, help=help_text)


def write_json(path: str | Path, data) -> None:
    """Write JSON atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def table(rows: list[list], header: list[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
