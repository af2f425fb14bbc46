"""Wall time, per-stage time and peak memory of ``neuroadda demo`` (the README's first command).

Runs the demo as a child process into a fresh temporary folder, exactly as a user would, and reads the
per-stage times the demo records in ``demo.json``. Peak memory is the child's peak resident set size.

    python bench/demo.py                 # one run (~3-4 min on a 2-core CPU)
    python bench/demo.py --json out.json # also write the rows as JSON
    python bench/demo.py --budget 300    # exit non-zero when the demo takes longer (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_demo(out: Path, extra: list[str]) -> tuple[float, float, dict]:
    """(wall s, peak RSS GB of the child, demo.json) of one ``neuroadda demo --out out`` run."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "neuroadda.cli.main", "demo", "--out", str(out), "--quiet", *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"demo failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
    return wall, peak, json.loads((out / "demo.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=300.0, help="wall-time target in seconds (default: 300)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--retrain", action="store_true", help="time `neuroadda demo --retrain` (rebuilds the backbones "
                                                           "into the repository)")
    args = ap.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        wall, peak, demo = run_demo(Path(tmp) / "demo", ["--retrain"] if args.retrain else [])
    rows = [(k, v) for k, v in demo["stage_seconds"].items()]
    total = sum(v for _, v in rows)
    print(f"neuroadda demo on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}\n")
    print("| stage | seconds | share |\n|---|---:|---:|")
    for k, v in rows:
        print(f"| {k} | {v:.1f} | {100 * v / total:.0f}% |")
    print(f"| start-up, figures, summary (wall - stages) | {wall - total:.1f} | |")
    print(f"| **wall time (child process)** | **{wall:.1f}** | |")
    print(f"\npeak RSS {peak:.2f} GB; target {args.budget:.0f} s: {'met' if wall <= args.budget else 'MISSED'} "
          f"(wall / target = {wall / args.budget:.2f})")
    rep = demo["report"]
    print(f"result: source {rep['source']}, VI fine-tuned {rep['arms']['finetuned']['vi_mean']:.3f} vs scratch "
          f"{rep['arms']['scratch']['vi_mean']:.3f} bits ({rep['vi_reduction_pct']:.1f}% lower)")
    if args.json:
        Path(args.json).write_text(json.dumps({"wall_s": wall, "peak_rss_gb": peak, "stages_s": dict(rows),
                                               "budget_s": args.budget, "report": rep}, indent=2))
    return 0 if wall <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
