"""Which embedding choices make MMD² rank sources the way they transfer? Runs every variant side by side.

usage: python bench/select_variants.py --target neuroproof --sources gala-train isbi2012 vnc-gerhard2013 \
           --backbones runs/backbones [--patches 256] [--json OUT] [--only NAME ...]

For each variant it ranks the sources with ``neuroadda.selection.select.rank_sources`` and prints one Markdown
row: the ranking and the MMD² of each source. Variants change one choice at a time from the default:
pooling (mean / max / mean+std), encoder level(s), embedding space (per-backbone standardization, PCA, raw),
intensity normalization, voxel-size harmonization, and each backbone's own space vs one shared encoder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neuroadda.selection.select import EmbedSettings, rank_sources, resolve_backbones  # noqa: E402


def variants(sources, backbones):
    base = EmbedSettings()
    own = dict(backbones)
    out = [
        ("default: bottleneck, mean pool, standardized, target voxel size", base, own),
        ("max pooling", replace(base, pooling="max"), own),
        ("mean+max pooling", replace(base, pooling="meanmax"), own),
        ("mean+std pooling (second order)", replace(base, pooling="meanstd"), own),
        ("all encoder levels, mean+std", replace(base, pooling="meanstd", levels=(0, 1, 2, 3)), own),
        ("shallow levels 0-1, mean+std", replace(base, pooling="meanstd", levels=(0, 1)), own),
        ("PCA to 16 dims", replace(base, space="pca:16"), own),
        ("raw features (no standardization)", replace(base, space="none"), own),
        ("no intensity normalization", replace(base, normalization="none"), own),
        ("robust percentile normalization", replace(base, normalization="percentile"), own),
        ("coarsest common voxel (50,10,10), patch 8x96x96",
         replace(base, voxel_size=(50.0, 10.0, 10.0), patch_size=(8, 96, 96)), own),
        ("coarsest common voxel, patch 8x96x96, mean+std all levels",
         replace(base, voxel_size=(50.0, 10.0, 10.0), patch_size=(8, 96, 96), pooling="meanstd",
                 levels=(0, 1, 2, 3)), own),
        ("smaller patches 8x48x48", replace(base, patch_size=(8, 48, 48)), own),
    ]
    for s in sources:
        out.append((f"one shared encoder ({s}), mean pool", base, {t: backbones[s] for t in sources}))
        out.append((f"one shared encoder ({s}), mean+std, all levels",
                    replace(base, pooling="meanstd", levels=(0, 1, 2, 3)), {t: backbones[s] for t in sources}))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="neuroproof")
    ap.add_argument("--sources", nargs="+", default=["gala-train", "isbi2012", "vnc-gerhard2013"])
    ap.add_argument("--backbones", default="runs/backbones")
    ap.add_argument("--patches", type=int, default=256)
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--only", nargs="*", default=None, help="substrings of variant names to run")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    backbones = resolve_backbones(args.sources, [], args.backbones)
    missing = [s for s, p in backbones.items() if p is None]
    if missing:
        sys.exit(f"no backbone under {args.backbones} for {missing}: run 'neuroadda pretrain --source S --out DIR/S'")
    rows = []
    print("| variant | ranking (closest first) | " + " | ".join(f"MMD² {s}" for s in args.sources) + " | s |")
    print("|---|---|" + "---:|" * (len(args.sources) + 1))
    for name, settings, bbs in variants(args.sources, backbones):
        if args.only and not any(o in name for o in args.only):
            continue
        t = time.perf_counter()
        sel = rank_sources(args.target, bbs, replace(settings, n_patches=args.patches),
                           permutations=args.permutations, progress=False)
        dt = time.perf_counter() - t
        by = {r["source"]: r for r in sel["ranking"]}
        order = " < ".join(r["source"] for r in sel["ranking"])
        cells = " | ".join(f"{by[s]['mmd2']:.4f} [{by[s]['ci_low']:.3f}, {by[s]['ci_high']:.3f}]" for s in args.sources)
        print(f"| {name} | {order} | {cells} | {dt:.0f} |", flush=True)
        rows.append({"variant": name, "ranking": [r["source"] for r in sel["ranking"]],
                     "mmd2": {s: by[s]["mmd2"] for s in args.sources},
                     "ci": {s: [by[s]["ci_low"], by[s]["ci_high"]] for s in args.sources},
                     "p_value": {s: by[s]["p_value"] for s in args.sources}, "seconds": dt})
    if args.json:
        Path(args.json).write_text(json.dumps({"target": args.target, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
