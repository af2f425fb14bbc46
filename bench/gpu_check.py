"""The measuring half of ``bench/gpu_check.sh``: one time-boxed GPU check of training and block-wise prediction.

Run by ``gpu_check.sh`` with the interpreter it prepared (``python bench/gpu_check.py --out OUT``); every stage runs
the real CLI (``python -m neuroadda.cli.main ...``) in a subprocess with a timeout and survives the failure of the
stages before it. Results go to ``OUT/gpu_check.json`` (rewritten after every stage, so a run killed half way still
says what it measured):

  env      torch / CUDA / GPU, versions of the packages the stages import, a tiny fp32 + bf16 conv3d on the GPU
  a        ``pretrain --source gala-train`` with configs/pretrain.yaml (16-32-64-128, patch 16x96x96, batch 2) for
           ``--steps-a`` steps at precision "32" and at "bf16-mixed": steps/s, final loss, threshold, CUDA use
  b        ``predict`` of the neuroproof crop, whole and ``--block-size 64 128 128 --workers 2``, with a checkpoint
           of (a) (else the shipped small gala-train backbone): wall time of each, max |difference|
  c        a longer pretraining (precision 32, batch 2, as configured) sized from (a)'s steps/s to about
           ``--train-seconds`` of steps within the deadline; model.pt -> OUT/gala-train-gpu.pt

While a stage runs, ``nvidia-smi`` is sampled every second (utilisation, memory used, compute processes): that and
the checkpoint's ``device`` say whether the run was on the GPU (the CLI keeps Lightning's "GPU used" line quiet).

Time: the deadline is ``$GPU_CHECK_START + $GPU_CHECK_LIMIT`` seconds (set by gpu_check.sh: its own start, 460 s).
``--quick`` (CPU test): 10 steps everywhere, long timeouts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ (already there when run as a script)
from gpu_check_lib import (  # noqa: E402
    MIB,
    REPO,
    Check,
    now,
    read_checkpoint,
    read_metrics,
    run_cli,
    used_cuda,
    write_config,
)

# ----------------------------------------------------------------------------------------------------------------
# env


PROBE = r"""
import json, sys, time, importlib
out = {"python": sys.version.split()[0], "executable": sys.executable}
versions = {}
for name in ["torch", "pytorch_lightning", "torchmetrics", "monai", "pydantic", "pydantic_core", "zarr", "numcodecs",
             "donfig", "google_crc32c", "daisy", "funlib.geometry", "waterz", "ome_zarr", "ome_zarr.writer", "dask",
             "numpy", "scipy", "skimage", "h5py", "yaml", "tqdm", "cloudpickle", "tifffile", "neuroadda"]:
    try:
        m = importlib.import_module(name)
        versions[name] = {"version": str(getattr(m, "__version__", "?")), "file": str(getattr(m, "__file__", ""))}
    except Exception as e:
        versions[name] = {"error": f"{type(e).__name__}: {e}"}
out["versions"] = versions
try:
    import torch
    out["cuda_available"] = torch.cuda.is_available()
    out["torch_cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out["allow_tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    out["allow_tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    out["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    if torch.cuda.is_available():
        torch.set_grad_enabled(False)
        out["device_count"] = torch.cuda.device_count()
        out["device_name"] = torch.cuda.get_device_name(0)
        out["capability"] = list(torch.cuda.get_device_capability(0))
        out["bf16_supported"] = torch.cuda.is_bf16_supported()
        free, total = torch.cuda.mem_get_info()
        out["mem_total_gib"] = round(total / 2**30, 1)
        x = torch.randn(2, 16, 16, 96, 96, device="cuda")
        conv = torch.nn.Conv3d(16, 32, 3, padding=1).cuda()
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(10):
            y = conv(x)
        torch.cuda.synchronize(); out["conv3d_fp32_ms"] = round((time.perf_counter() - t) * 100, 3)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yb = conv(x)
        out["conv3d_bf16_vs_fp32_max_abs"] = float((yb.float() - y).abs().max())
        xs = x[:1, :, :8, :32, :32].contiguous()
        ref = torch.nn.functional.conv3d(xs.cpu().double(), conv.weight.detach().cpu().double(),
                                         conv.bias.detach().cpu().double(), padding=1)
        out["conv3d_fp32_gpu_vs_cpu64_max_abs"] = float((conv(xs).detach().cpu().double() - ref).abs().max())
except Exception as e:
    out["torch_error"] = f"{type(e).__name__}: {e}"
print("PROBE " + json.dumps(out))
"""


def stage_env(check: Check) -> dict:
    t0 = now()
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=180)
    print(r.stdout[-4000:] + r.stderr[-4000:], flush=True)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("PROBE ")), None)
    res = json.loads(line[6:]) if line else {"error": f"probe failed rc {r.returncode}: {r.stderr[-2000:]}"}
    res["ok"] = line is not None and "torch_error" not in res
    res["probe_s"] = round(now() - t0, 1)
    return res


# ----------------------------------------------------------------------------------------------------------------
# training


def pretrain(check: Check, name: str, precision: str, steps: int, timeout: float) -> dict:
    cfg = write_config(check.work / f"{name}.yaml", precision)
    out = check.work / name
    shutil.rmtree(out, ignore_errors=True)  # a left-over folder would be resumed
    r = run_cli(["pretrain", "--source", check.source, "--config", cfg, "--out", out, "--max-steps", steps,
                 "--logger", "csv", "--quiet"], timeout, watch=out)
    res = {"precision": precision, "max_steps": steps, **r, "out": str(out)}
    model = out / "model.pt"
    res["ok"] = r["rc"] == 0 and model.exists()
    if model.exists():
        res.update(read_checkpoint(model))
        res["model_pt"] = str(model)
    res.update(read_metrics(out))
    res["used_cuda"] = used_cuda(res)
    if res["ok"]:
        res.pop("tail", None)
    return res


def stage_a(check: Check, precision: str, steps: int) -> dict:
    timeout = 900 if check.quick else min(150.0, max(60.0, check.remaining() - 200))  # a safety net, not a budget
    return pretrain(check, f"a_{precision.replace('-', '_')}", precision, steps, timeout)


# ----------------------------------------------------------------------------------------------------------------
# prediction


def stage_b(check: Check, block_size: list[int], workers: int, predict_input: str) -> dict:
    import numpy as np
    import zarr

    a = check.results["stages"]
    candidates = [(a.get(k) or {}).get("model_pt") for k in ("a_32", "a_bf16-mixed")]
    ckpt = next((c for c in candidates if c and Path(c).exists()), None)
    res: dict = {"input": predict_input, "block_size": block_size, "workers": workers}
    if ckpt is None:
        ckpt = str(REPO / "datasets" / "backbones" / "gala-train.pt")
        res["note"] = "no checkpoint from stage a: the shipped small gala-train backbone is used"
    res["checkpoint"] = ckpt
    timeout = 900 if check.quick else min(120.0, max(45.0, (check.remaining() - 150) / 2))
    whole, block = check.work / "affs_whole.zarr", check.work / "affs_block.ome.zarr"
    for p in (whole, block, Path(str(block) + ".work")):
        shutil.rmtree(p, ignore_errors=True)
    rw = run_cli(["predict", "--checkpoint", ckpt, "--input", predict_input, "--out", whole, "--quiet"], timeout)
    res["whole"] = rw
    rb = run_cli(["predict", "--checkpoint", ckpt, "--input", predict_input, "--out", block, "--block-size",
                  *block_size, "--workers", workers, "--quiet"], timeout)
    res["blockwise"] = rb
    stats_dir = Path(str(block) + ".work") / "stats" / "predict"
    stats = [json.loads(p.read_text()) for p in sorted(stats_dir.glob("*.json"))] if stats_dir.exists() else []
    if stats:
        rb["blocks"] = len(stats)
        rb["block_seconds_sum"] = round(sum(s["seconds"] for s in stats), 2)
        rb["block_seconds_max"] = round(max(s["seconds"] for s in stats), 2)
        rb["worker_pids"] = sorted({s["pid"] for s in stats})
        rb["peak_rss_mib"] = round(max(s["peak_rss_bytes"] for s in stats) / MIB)
    for r in (rw, rb):
        if r["rc"] == 0:
            r.pop("tail", None)
    if rw["rc"] == 0 and rb["rc"] == 0:
        x = zarr.open_array(str(whole), mode="r")
        g = zarr.open_group(str(block), mode="r")
        y = g["0"]
        res["shape_whole"], res["shape_block"] = list(x.shape), list(y.shape)
        res["dtype"] = str(x.dtype)
        res["attrs_whole_voxel_size"] = dict(x.attrs).get("voxel_size_nm")
        if x.shape == y.shape:
            xa, ya = x[...].astype(np.float64), y[...].astype(np.float64)
            d = np.abs(xa - ya)
            res["max_abs_diff"] = float(d.max())
            res["mean_abs_diff"] = float(d.mean())
            res["voxels_diff_gt_1e-6"] = int((d > 1e-6).sum())
            res["voxels_diff_gt_1e-3"] = int((d > 1e-3).sum())
            res["argmax_diff_cz_y_x"] = [int(i) for i in np.unravel_index(int(d.argmax()), d.shape)]
            res["binary_0.5_disagreements"] = int(((xa > 0.5) != (ya > 0.5)).sum())
            res["voxels"] = int(d.size)
            res["whole_mean"], res["whole_min"], res["whole_max"] = float(xa.mean()), float(xa.min()), float(xa.max())
            res["whole_nan"] = int(np.isnan(xa).sum())
        res["ok"] = True
    else:
        res["ok"] = False
    res["wall_whole_s"], res["wall_blockwise_s"] = rw["wall_s"], rb["wall_s"]
    return res


# ----------------------------------------------------------------------------------------------------------------
# the longer training


def stage_c(check: Check, train_seconds: float, fixed_steps: int | None) -> dict:
    a = check.results["stages"]
    a32, abf = a.get("a_32") or {}, a.get("a_bf16-mixed") or {}
    # steady steps/s (between CSV flushes) when measured, else steps / whole fit time (an underestimate)
    rate = a32.get("steady_steps_per_s") or a32.get("steps_per_s") or abf.get("steady_steps_per_s") \
        or abf.get("steps_per_s")
    res: dict = {"rate_from_a": rate}
    # fixed cost inside the fit (CUDA start, first steps): fit time minus steps at the steady rate
    fit_overhead = 10.0
    if a32.get("steady_steps_per_s") and a32.get("train_seconds") and a32.get("steps"):
        fit_overhead = min(60.0, max(0.0, a32["train_seconds"] - a32["steps"] / a32["steady_steps_per_s"]))
    res["fit_overhead_s"] = round(fit_overhead, 1)
    # outside the fit: start-up + data (~15 s), threshold calibration and checkpoint (~15 s), margin
    reserve = 45.0 + fit_overhead
    budget = min(train_seconds, check.remaining() - reserve)
    res["step_budget_s"] = round(budget, 1)
    if fixed_steps:
        steps = fixed_steps
    elif budget < 20:
        return {**res, "ok": False, "error": f"only {check.remaining():.0f} s left: skipped"}
    elif rate:
        steps = max(50, int(rate * budget * 0.95))
    else:
        steps = max(50, int(8 * budget))  # no rate measured: a guess of 8 steps/s
        res["note"] = "no steps/s from stage a: 8 steps/s assumed"
    timeout = 3600 if check.quick else max(30.0, check.remaining() - 10)
    r = pretrain(check, "c_long", "32", steps, timeout)
    res.update(r)
    model = check.work / "c_long" / "model.pt"
    if model.exists():
        size = model.stat().st_size
        if size < 16 * MIB:
            shutil.copy2(model, check.out / "gala-train-gpu.pt")
            res["copied_to"] = str(check.out / "gala-train-gpu.pt")
        else:
            res["not_copied"] = f"model.pt is {size} bytes (>= 16 MiB)"
    if r.get("metrics_csv"):
        shutil.copy2(r["metrics_csv"], check.out / "gala-train-gpu-metrics.csv")
    return res


def headline(st: dict) -> dict:
    """The numbers asked for, in one place (the stages hold the detail)."""
    h: dict = {}
    env = st.get("env") or {}
    h["gpu"] = {k: env.get(k) for k in ("device_name", "cuda_available", "torch_cuda", "bf16_supported")}
    h["torch"] = ((env.get("versions") or {}).get("torch") or {}).get("version")
    for key in ("a_32", "a_bf16-mixed", "c_long"):
        r = st.get(key) or {}
        h[key] = {k: r.get(k) for k in ("ok", "steps", "train_seconds", "steps_per_s", "steady_steps_per_s", "wall_s",
                                        "final_train_loss",
                                        "final_val_loss", "threshold", "learned", "vi_at_threshold", "device")}
        h[key]["used_cuda"] = (r.get("used_cuda") or {}).get("verdict")
    b = st.get("b_predict") or {}
    h["b_predict"] = {k: b.get(k) for k in ("ok", "wall_whole_s", "wall_blockwise_s", "max_abs_diff", "mean_abs_diff",
                                            "voxels_diff_gt_1e-6", "binary_0.5_disagreements", "checkpoint")}
    h["b_predict"]["used_cuda_whole"] = (b.get("whole") or {}).get("gpu", {}).get("util_max_pct")
    h["b_predict"]["used_cuda_blockwise"] = (b.get("blockwise") or {}).get("gpu", {}).get("util_max_pct")
    h["c_long"]["copied_to"] = (st.get("c_long") or {}).get("copied_to")
    return h


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--work", default="/tmp/gpu_check_work")
    p.add_argument("--quick", action="store_true", help="CPU test: few steps, long timeouts")
    p.add_argument("--steps-a", type=int, default=None, help="steps of each stage-a run (default 300; quick 10)")
    p.add_argument("--steps-c", type=int, default=None, help="fixed steps of stage c (default: from a's rate)")
    p.add_argument("--train-seconds", type=float, default=210.0, help="stage c: seconds of steps aimed at")
    p.add_argument("--block-size", type=int, nargs=3, default=[64, 128, 128])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--source", default="gala-train", help="stages a and c: training volume")
    p.add_argument("--input", default="neuroproof", help="stage b input (dataset name or PATH[:KEY])")
    p.add_argument("--stages", default="env,a,b,c")
    args = p.parse_args(argv)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    start = float(os.environ.get("GPU_CHECK_START", now()))
    deadline = start + float(os.environ.get("GPU_CHECK_LIMIT", 460))
    check = Check(out, work, deadline, args.quick)
    check.source = args.source
    steps_a = args.steps_a or (10 if args.quick else 300)
    steps_c = args.steps_c or (10 if args.quick else None)
    stages = args.stages.split(",")
    check.results["settings"] = {**vars(args), "steps_a": steps_a, "steps_c": steps_c}
    check.save()
    if "env" in stages:
        check.stage("env", stage_env, check)
    if "a" in stages:
        for precision in ("32", "bf16-mixed"):
            check.stage(f"a_{precision}", stage_a, check, precision, steps_a)
    if "b" in stages:
        check.stage("b_predict", stage_b, check, args.block_size, args.workers, args.input)
    if "c" in stages:
        check.stage("c_long", stage_c, check, args.train_seconds, steps_c)
    check.results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    check.results["headline"] = headline(check.results["stages"])
    check.save()
    print("\n===== headline (all numbers in gpu_check.json) =====")
    print(json.dumps(check.results["headline"], indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
