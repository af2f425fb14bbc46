"""Benchmark: our default recipe vs torch-em's standard 3D affinity recipe, gala-train -> gala-test, equal CPU.

Run from the repository root in the project venv (the peer venv is made on first use):

    python bench/peer_recipe.py [--steps 1000] [--seeds 0 1 2] [--threads 1] [--only ours|peer]
                                [--peer-budget CPU_S | --peer-iterations N] [--no-cache]

Ours: ``neuroadda pretrain --source gala-train --max-steps N --seed S`` (default config), ``neuroadda predict``
on gala-test, ``neuroadda segment`` + ``neuroadda evaluate`` at the threshold the checkpoint chose on its
validation slab; the same affinities swept over every threshold give the best test VI. CPU-s = the whole
``pretrain`` process (imports, training, its threshold sweep), from getrusage(RUSAGE_CHILDREN).
Peer: ``bench/peer/train_torchem.py`` in its own venv (torch-em 0.10.9, no torchvision) trains on the same
training box and validates on the same held-out slab (``split_regions(shape, 0.2)``: x 160-200), until its process
has used the mean CPU-s of our runs (or a fixed iteration count). Its sigmoid outputs (1 = boundary) become our
affinities as 1 - output; the threshold is chosen on the slab with the same list, agglomeration (watershed
fragments + waterz) and VI (bits, gt 0 ignored) as ours, ties to the lower threshold.
Both processes get the same thread count (OMP_NUM_THREADS and torch.set_num_threads). Results, with the inputs
of each arm, go to bench/results/peer_recipe.json; an arm whose inputs are unchanged is reused from there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neuroadda.config import TrainConfig  # noqa: E402
from neuroadda.data.affinities import affinities_from_labels  # noqa: E402
from neuroadda.data.cards import get_card  # noqa: E402
from neuroadda.data.regions import split_regions  # noqa: E402
from neuroadda.metrics.vi import evaluate_segmentation  # noqa: E402
from neuroadda.segmentation.agglomerate import segmentations  # noqa: E402

PEER_DIR = ROOT / "bench" / "peer"
RESULTS = ROOT / "bench" / "results"
TORCH_EM = "torch-em==0.10.9"
# What torch-em's import path needs, installed with --no-deps (torch first, then these; never torchvision).
PEER_PACKAGES = ["numpy==2.4.6", "scipy==1.17.1", "h5py==3.16.0", "tqdm==4.70.1", "imageio==2.38.2",
                 "python-elf==0.9.2", "matplotlib==3.11.2", "packaging==26.4", "pillow==13.0.0",
                 "pyparsing==3.3.3", "cycler==0.12.1", "python-dateutil==4.0.0", "kiwisolver==1.5.1",
                 "bioimage-cpp==0.10.0", "scikit-image==0.26.0", "lazy-loader==0.6", "networkx==3.6.1",
                 "scikit-learn==1.9.1", "joblib==1.6.0", "cloudpickle==3.1.3", "narwhals==2.29.0",
                 "threadpoolctl==3.8.0", "kornia==0.9.0", "kornia_rs==0.2.0"]
THRESHOLDS = sorted(TrainConfig().thresholds)


def ensure_peer_venv(venv: Path) -> Path:
    """Create ``venv`` with torch-em and only what its training path imports, unless it already imports."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import sys; sys.path.insert(0, {str(PEER_DIR)!r}); import no_torchvision; "
             "no_torchvision.install(); import torch_em.segmentation, torch_em.util.prediction, h5py"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating the peer venv {venv} (torch, then torch-em and its imports with --no-deps)", flush=True)
    steps = [["python3", "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", "torch==2.13.0"],
             [str(python), "-m", "pip", "install", "-q", "--no-deps", TORCH_EM, *PEER_PACKAGES]]
    for cmd in steps:
        print("  " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    subprocess.run(probe, check=True)
    return python


def check_convention(python: Path, work: Path) -> None:
    """torch-em's AffinityTransform target on a hand-made volume, against a voxel loop and our affinities.

    Expected (hand rule): channel c at v is about the pair (v, v - e_c); torch-em writes 1 - [same label]
    (label 0 is a label like any other) and masks the first plane; so 1 - its target equals our affinity
    wherever our mask keeps the edge (we also drop 0-0 edges)."""
    labels = np.array([[[1, 1, 0, 2], [1, 2, 2, 2], [0, 0, 3, 3]],
                       [[1, 0, 0, 2], [4, 4, 2, 2], [0, 0, 3, 0]]], np.uint64)
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "labels.npy", labels)
    subprocess.run([str(python), str(PEER_DIR / "train_torchem.py"), "--affinity-check", str(work / "labels.npy"),
                    str(work / "target.npy")], check=True, env=child_env(1))
    target = np.load(work / "target.npy")
    assert target.shape == (6,) + labels.shape, target.shape
    loop_t, loop_m = np.ones((3,) + labels.shape), np.zeros((3,) + labels.shape)
    for c, (z, y, x) in ((c, idx) for c in range(3) for idx in np.ndindex(labels.shape)):
        u = [z, y, x]
        u[c] -= 1
        if u[c] >= 0:
            loop_t[c, z, y, x], loop_m[c, z, y, x] = float(labels[z, y, x] != labels[tuple(u)]), 1.0
    ours, mask = affinities_from_labels(labels, label_zero="boundary")
    keep = mask > 0
    if not (np.array_equal(target[3:], loop_m) and np.array_equal(target[:3][loop_m > 0], loop_t[loop_m > 0])
            and np.array_equal(1.0 - target[:3][keep], ours[keep])):
        raise SystemExit("torch-em's affinity convention is not the one assumed: 1 - output != our affinity")
    print(f"convention: 1 - torch-em AffinityTransform == our affinities on {int(keep.sum())} kept edges; "
          f"torch-em also trains {int((loop_m.astype(bool) & ~keep).sum())} 0-0 edges as 'same object'")


def child_env(threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}
    return env


def timed(cmd: list[str], env: dict, log: Path) -> tuple[float, float]:
    """Run ``cmd`` to completion (output to ``log``); (CPU-s user+sys of the child, wall-s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        raise SystemExit(f"{cmd[0]} ... failed (exit {rc}); see {log}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def sweep(affs: np.ndarray, gt: np.ndarray) -> list[dict]:
    """VI rows for every threshold (our fragments + waterz path, gt 0 ignored)."""
    return [{"threshold": t, **{k: float(v) for k, v in evaluate_segmentation(seg, gt).items() if k != "n_slices"}}
            for t, seg in segmentations(affs, THRESHOLDS)]


def pick(table: list[dict]) -> dict:
    return min(table, key=lambda r: (r["vi"], r["threshold"]))


def fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for root in paths:
        for f in sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file()
                        and p.suffix in (".py", ".yaml", ".yml") and "__pycache__" not in p.parts):
            h.update(str(f.relative_to(ROOT)).encode() + f.read_bytes())
    return h.hexdigest()[:16]


def gala_path(name: str) -> Path:
    card = get_card(name)
    assert card.raw.key == "raw" and card.labels.key == "labels" and card.raw.file == card.labels.file
    return card.file_path(card.raw.file)


def run_ours(seed: int, args, work: Path) -> dict:
    import zarr

    from neuroadda.models.checkpoint import load_backbone

    d = work / f"ours-seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("neuroadda"))
    env = child_env(args.threads)
    print(f"ours seed {seed}: neuroadda pretrain --max-steps {args.steps} ({args.threads} thread(s))", flush=True)
    cpu, wall = timed([exe, "pretrain", "--source", "gala-train", "--out", str(d), "--max-steps", str(args.steps),
                       "--seed", str(seed), "--logger", "none", "--quiet"], env, d / "pretrain.log")
    timed([exe, "predict", "--checkpoint", str(d / "model.pt"), "--input", "gala-test", "--out",
           str(d / "affs.zarr"), "--quiet"], env, d / "predict.log")
    timed([exe, "segment", "--affinities", str(d / "affs.zarr"), "--out", str(d / "seg.zarr")], env,
          d / "segment.log")
    timed([exe, "evaluate", "--seg", str(d / "seg.zarr"), "--gt", "gala-test", "--json", str(d / "eval.json")],
          env, d / "evaluate.log")
    _, meta = load_backbone(d / "model.pt")
    cli = json.loads((d / "eval.json").read_text())
    test = sweep(np.asarray(zarr.open_array(str(d / "affs.zarr"), mode="r")[:]), gt_of("gala-test"))
    at = next(r for r in test if r["threshold"] == meta["threshold"])
    if abs(at["vi"] - cli["vi"]) > 1e-9:
        raise SystemExit(f"ours seed {seed}: CLI evaluate VI {cli['vi']} != sweep VI {at['vi']} at the same threshold")
    return {"seed": seed, "steps": int(meta["steps"]), "cpu_s": cpu, "wall_s": wall,
            "threshold": meta["threshold"], "vi_at_threshold": cli["vi"], "split": cli["vi_split"],
            "merge": cli["vi_merge"], "best_test": pick(test), "val_table": meta["threshold_table"], "test_table": test}


def gt_of(name: str, box=None) -> np.ndarray:
    import h5py

    with h5py.File(gala_path(name), "r") as f:
        return f["labels"][box if box is not None else ()]


def run_peer(seed: int, args, work: Path, python: Path, stop: dict, boxes) -> dict:
    train_box, val_box = boxes
    d = work / f"peer-seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    fmt = lambda box: ",".join(f"{s.start}:{s.stop}" for s in box)  # noqa: E731
    cmd = [str(python), str(PEER_DIR / "train_torchem.py"), "--train", str(gala_path("gala-train")),
           "--test", str(gala_path("gala-test")), "--train-roi", fmt(train_box), "--val-roi", fmt(val_box),
           "--out", str(d), "--seed", str(seed), "--threads", str(args.threads)]
    cmd += ["--val-patch", args.val_patch]
    cmd += (["--iterations", str(stop["iterations"])] if "iterations" in stop
            else ["--budget-cpu", str(stop["budget_cpu_s"])])
    print(f"peer seed {seed}: torch-em recipe, {stop} ({args.threads} thread(s))", flush=True)
    cpu, wall = timed(cmd, child_env(args.threads), d / "train.log")
    res = json.loads((d / "result.json").read_text())
    val = sweep(1.0 - np.load(d / "affs_val.npy"), gt_of("gala-train", val_box))
    chosen = pick(val)
    test = sweep(1.0 - np.load(d / "affs_test.npy"), gt_of("gala-test"))
    at = next(r for r in test if r["threshold"] == chosen["threshold"])
    return {"seed": seed, **res, "cpu_s": res["train_cpu_s"], "wall_s": res["train_wall_s"], "process_cpu_s": cpu,
            "threshold": chosen["threshold"], "vi_at_threshold": at["vi"], "split": at["vi_split"],
            "merge": at["vi_merge"], "best_test": pick(test), "val_table": val, "test_table": test}


def paired(a: list[float], b: list[float]) -> dict:
    from scipy import stats

    d = np.asarray(a) - np.asarray(b)
    n = len(d)
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(d.mean()), "sd": sd, "ci95": [float(d.mean()) - half, float(d.mean()) + half], "n": n}


def ms(xs, digits: int = 3) -> str:
    xs = np.asarray(xs, float)
    return (f"{xs.mean():.{digits}f} ± {xs.std(ddof=1):.{digits}f}" if len(xs) > 1 else f"{xs.mean():.{digits}f}")


def report(ours: dict, peer: dict, seeds: list[int]) -> tuple[str, dict]:
    """Markdown table (one row a seed, then mean ± sd) and the paired ours - peer differences."""
    f1 = lambda r, k: f"{r[k]:.1f}" if r else "-"  # noqa: E731
    at = lambda r: f"{r['vi_at_threshold']:.3f} (t {r['threshold']:g})" if r else "-"  # noqa: E731
    best = lambda r: f"{r['best_test']['vi']:.3f} (t {r['best_test']['threshold']:g})" if r else "-"  # noqa: E731
    rows = ["| seed | ours VI @ stored t | ours best-test VI | peer VI @ val-chosen t | peer best-test VI "
            "| ours CPU-s | peer CPU-s | peer iterations |", "|---|---|---|---|---|---|---|---|"]
    for s in seeds:
        o, p = ours.get(s), peer.get(s)
        rows.append(f"| {s} | {at(o)} | {best(o)} | {at(p)} | {best(p)} | {f1(o, 'cpu_s')} | {f1(p, 'cpu_s')} "
                    f"| {p['iterations'] if p else '-'} |")
    col = lambda arm, key: [key(arm[s]) for s in seeds if s in arm]  # noqa: E731
    stats_row = ["mean ± sd"]
    for arm, key in ((ours, lambda r: r["vi_at_threshold"]), (ours, lambda r: r["best_test"]["vi"]),
                     (peer, lambda r: r["vi_at_threshold"]), (peer, lambda r: r["best_test"]["vi"]),
                     (ours, lambda r: r["cpu_s"]), (peer, lambda r: r["cpu_s"]), (peer, lambda r: r["iterations"])):
        stats_row.append(ms(col(arm, key), 3 if len(stats_row) < 5 else 1) if col(arm, key) else "-")
    rows.append("| " + " | ".join(stats_row) + " |")
    both = [s for s in seeds if s in ours and s in peer]
    summary = {"seeds_paired": both}
    if both:
        for name, key in (("at each arm's chosen threshold", lambda r: r["vi_at_threshold"]),
                          ("at each arm's best test threshold", lambda r: r["best_test"]["vi"])):
            r = paired([key(ours[s]) for s in both], [key(peer[s]) for s in both])
            summary[f"ours_minus_peer {name}"] = r
            rows.append(f"\nours - peer VI {name}: {r['mean']:+.3f} bits (paired over seeds {both}; "
                        f"95% t CI [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}])")
    return "\n".join(rows), summary


def load_cache(path: Path) -> dict:
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            print(f"{path}: unreadable, starting afresh", flush=True)
    return {"runs": {"ours": [], "peer": []}}


def cached(cache: dict, arm: str, inputs: dict, tolerance: float = 0.0) -> dict | None:
    """A stored run of ``arm`` with the same inputs (a CPU budget may differ by ``tolerance``, relative)."""
    for run in reversed(cache["runs"][arm]):
        a, b = dict(run["inputs"]), dict(inputs)
        ba, bb = a.pop("budget_cpu_s", None), b.pop("budget_cpu_s", None)
        if a == b and (ba == bb or (ba and bb and abs(ba - bb) <= tolerance * bb)):
            return run
    return None


def save(cache: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cache, indent=1))
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("ours", "peer"), default=None, help="run one arm (the other from the cache)")
    p.add_argument("--steps", type=int, default=1000, help="our training steps (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads of both trainings (default: %(default)s)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--peer-budget", type=float, default=None,
                      help="peer CPU-seconds (default: the mean CPU-s of our runs of --steps)")
    stop.add_argument("--peer-iterations", type=int, default=None, help="train the peer for a fixed count instead")
    p.add_argument("--val-patch", choices=("fit", "train"), default="fit",
                   help="peer validation patches: cut to fit the slab (default) "
                        "or torch-em's zero-padded training patch")
    p.add_argument("--budget-tolerance", type=float, default=0.05,
                   help="reuse a cached peer run whose budget is within this fraction (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="rerun every arm")
    p.add_argument("--venv", type=Path, default=Path(os.environ.get("NEUROADDA_PEER_VENV", "/work/venvs/torchem")),
                   help="peer venv, created when missing (default: $NEUROADDA_PEER_VENV or %(default)s)")
    p.add_argument("--work", type=Path, default=RESULTS / "peer_recipe", help="checkpoints, affinities, logs")
    p.add_argument("--json", type=Path, default=RESULTS / "peer_recipe.json")
    args = p.parse_args(argv)
    cache = {"runs": {"ours": [], "peer": []}} if args.no_cache else load_cache(args.json)
    shape = tuple(get_card("gala-train").shape)
    boxes = split_regions(shape, 0.2)
    box_txt = [[[s.start, s.stop] for s in b] for b in boxes]
    ours, peer = {}, {}

    ours_inputs = lambda s: {"seed": s, "steps": args.steps, "threads": args.threads,  # noqa: E731
                             "code": fingerprint([ROOT / "neuroadda", ROOT / "configs"])}
    for s in args.seeds:
        hit = cached(cache, "ours", ours_inputs(s))
        if hit is None and args.only != "peer":
            hit = {"inputs": ours_inputs(s), "result": run_ours(s, args, args.work)}
            cache["runs"]["ours"].append(hit)
            save(cache, args.json)
        if hit is not None:
            ours[s] = hit["result"]

    if args.only != "ours":
        if args.peer_iterations is not None:
            stop = {"iterations": args.peer_iterations}
        elif args.peer_budget is not None:
            stop = {"budget_cpu_s": args.peer_budget}
        elif ours:
            stop = {"budget_cpu_s": round(float(np.mean([r["cpu_s"] for r in ours.values()])), 1)}
        else:
            print("peer_recipe: no run of ours to take the CPU budget from; give --peer-budget or --peer-iterations",
                  file=sys.stderr)
            return 2
        python = ensure_peer_venv(args.venv)
        check_convention(python, args.work / "convention")
        for s in args.seeds:
            inputs = {"seed": s, "threads": args.threads, "val_patch": args.val_patch, "split": box_txt,
                      "thresholds": THRESHOLDS, **stop,
                      "code": fingerprint([PEER_DIR]), "torch_em": TORCH_EM}
            hit = cached(cache, "peer", inputs, args.budget_tolerance)
            if hit is None:
                hit = {"inputs": inputs, "result": run_peer(s, args, args.work, python, stop, boxes)}
                cache["runs"]["peer"].append(hit)
                save(cache, args.json)
            peer[s] = hit["result"]

    table, summary = report(ours, peer, args.seeds)
    cache["last"] = {"seeds": args.seeds, "steps": args.steps, "threads": args.threads, "split": box_txt,
                     "thresholds": THRESHOLDS, "summary": summary, "table": table}
    save(cache, args.json)
    print(f"\ngala-train -> gala-test, VI in bits (gt 0 ignored), {args.threads} thread(s), ours {args.steps} steps; "
          f"validation slab {box_txt[1]}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
