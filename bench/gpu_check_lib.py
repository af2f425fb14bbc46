"""Helpers of ``bench/gpu_check.py``: the check's state and JSON file, a CLI subprocess with a timeout (its whole
process group killed), nvidia-smi sampling and metrics.csv polling while it runs, and the readers of a training run's
outputs (metrics.csv, model.pt). Not run on its own."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def now() -> float:
    return time.time()


class Check:
    def __init__(self, out: Path, work: Path, deadline: float, quick: bool):
        self.out, self.work, self.deadline, self.quick = out, work, deadline, quick
        self.results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": quick,
                              "deadline_in_s": round(deadline - now(), 1), "python": sys.executable,
                              "stages": {}}

    def remaining(self) -> float:
        return self.deadline - now()

    def save(self) -> None:
        self.results["elapsed_s_at_save"] = round(now() - float(os.environ.get("GPU_CHECK_START", now())), 1)
        path = self.out / "gpu_check.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        tmp.replace(path)

    def stage(self, name: str, fn, *args, **kwargs):
        """Run one stage; any exception is recorded and the check goes on."""
        print(f"\n===== stage {name} ({self.remaining():.0f} s left) =====", flush=True)
        t0 = now()
        try:
            res = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the point is to go on
            traceback.print_exc()
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        res = dict(res or {})
        res.setdefault("stage_wall_s", round(now() - t0, 1))
        self.results["stages"][name] = res
        self.save()
        print(f"===== stage {name}: {json.dumps(_short(res), default=str)}", flush=True)
        return res


def _short(res: dict) -> dict:
    return {k: v for k, v in res.items() if k not in ("threshold_table", "tail", "gpu", "versions", "loss_curve")}


class _Poller:
    """A context manager that runs ``self._loop`` in a daemon thread while ``self.active``."""

    active = True

    def __enter__(self):
        self._stop = threading.Event()
        self._thread = None
        if self.active:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self):
        raise NotImplementedError


class GpuSampler(_Poller):
    """nvidia-smi every second in a thread: peak / mean utilisation, peak memory used, compute PIDs seen."""

    def __init__(self, period: float = 1.0):
        self.period, self.samples, self.pids = period, [], set()
        self.ok = self.active = shutil.which("nvidia-smi") is not None

    def _query(self, args) -> list[str]:
        r = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                           timeout=10)
        return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()] if r.returncode == 0 else []

    def _loop(self):
        while not self._stop.is_set():
            try:
                for ln in self._query(["--query-gpu=utilization.gpu,memory.used"])[:1]:
                    util, mem = (float(x) for x in ln.split(",")[:2])
                    self.samples.append((util, mem))
                for ln in self._query(["--query-compute-apps=pid,used_memory"]):
                    self.pids.add(ln.split(",")[0].strip())
            except Exception:  # noqa: BLE001 - sampling is best effort
                pass
            self._stop.wait(self.period)

    def summary(self) -> dict:
        if not self.ok:
            return {"nvidia_smi": False}
        util = [s[0] for s in self.samples]
        mem = [s[1] for s in self.samples]
        return {"samples": len(self.samples), "util_max_pct": max(util, default=None),
                "util_mean_pct": round(sum(util) / len(util), 1) if util else None,
                "util_busy_samples": sum(u > 0 for u in util),
                "mem_used_max_mib": max(mem, default=None), "mem_used_min_mib": min(mem, default=None),
                "compute_pids": sorted(self.pids)}


class StepWatcher(_Poller):
    """Polls a training run's metrics.csv (the CSV logger flushes it every 100 steps) and notes when each new step
    appears: the slope between the first and the last flush is the steady steps/s, without start-up and the
    threshold calibration that ``train_seconds`` (the whole fit) includes."""

    def __init__(self, out_dir: Path | None, period: float = 0.5):
        self.out_dir, self.period, self.points = out_dir, period, []
        self.active = out_dir is not None

    def _loop(self):
        while not self._stop.is_set():
            try:
                files = sorted(self.out_dir.glob("logs/version_*/metrics.csv"))
                if files:
                    lines = files[-1].read_text().splitlines()
                    header = lines[0].split(",") if lines else []
                    if "step" in header:
                        col = header.index("step")
                        steps = [int(float(ln.split(",")[col])) for ln in lines[1:] if ln.split(",")[col:col + 1]
                                 and ln.split(",")[col]]
                        if steps and (not self.points or max(steps) > self.points[-1][1]):
                            self.points.append((now(), max(steps)))
            except Exception:  # noqa: BLE001 - best effort
                pass
            self._stop.wait(self.period)

    def summary(self) -> dict:
        res: dict = {"flush_points": [[round(t - self.points[0][0], 2), s] for t, s in self.points]}
        if len(self.points) >= 2:
            (t0, s0), (t1, s1) = self.points[0], self.points[-1]
            if t1 > t0:
                res["steady_steps_per_s"] = round((s1 - s0) / (t1 - t0), 3)
        return res


def run_cli(args: list[str], timeout: float, env: dict | None = None, watch: Path | None = None) -> dict:
    """``python -m neuroadda.cli.main ARGS`` in its own process group, output streamed to stdout, killed (with its
    daisy workers) after ``timeout`` s. Returns rc, wall_s, timed_out, the last output lines, the GPU samples."""
    cmd = [sys.executable, "-m", "neuroadda.cli.main", *[str(a) for a in args]]
    print("$ " + " ".join(cmd) + f"   (timeout {timeout:.0f} s)", flush=True)
    tail: collections.deque = collections.deque(maxlen=30)
    t0 = now()
    timed_out = False
    with GpuSampler() as gpu, StepWatcher(watch) as steps:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True, env={**os.environ, **(env or {})})

        def kill():
            nonlocal timed_out
            timed_out = True
            print(f"!! timeout after {timeout:.0f} s: killing process group {proc.pid}", flush=True)
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    return
                try:
                    proc.wait(wait)
                    return
                except subprocess.TimeoutExpired:
                    continue

        timer = threading.Timer(max(timeout, 1.0), kill)
        timer.start()
        try:
            for line in proc.stdout:
                print("  | " + line.rstrip("\n"), flush=True)
                tail.append(line.rstrip("\n")[-400:])
            rc = proc.wait()
        finally:
            timer.cancel()
        wall = now() - t0
    gpu_summary = gpu.summary()
    gpu_summary["pid"] = str(proc.pid)
    res = {"rc": rc, "wall_s": round(wall, 2), "timed_out": timed_out, "tail": list(tail), "gpu": gpu_summary}
    if watch is not None:
        res.update(steps.summary())
    return res


# ----------------------------------------------------------------------------------------------------------------
# readers and writers of a training run


def write_config(path: Path, precision: str) -> Path:
    """configs/pretrain.yaml with train.precision (and logger csv, for the loss) set: validated by the CLI."""
    import yaml

    cfg = yaml.safe_load((REPO / "configs" / "pretrain.yaml").read_text())
    cfg["train"]["precision"] = precision
    cfg["train"]["logger"] = "csv"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def read_metrics(out_dir: Path) -> dict:
    """Last train/loss and val/loss of the CSV logger (OUT/logs/version_*/metrics.csv), and the train loss curve."""
    import csv

    files = sorted(out_dir.glob("logs/version_*/metrics.csv"))
    if not files:
        return {}
    rows = list(csv.DictReader(files[-1].open()))
    train = [(int(float(r["step"])), float(r["train/loss"])) for r in rows if r.get("train/loss")]
    val = [(int(float(r["step"])), float(r["val/loss"])) for r in rows if r.get("val/loss")]
    res = {"metrics_csv": str(files[-1])}
    if train:
        res["final_train_loss"], res["final_train_loss_step"] = train[-1][1], train[-1][0]
        last = [v for _, v in train[-10:]]
        res["mean_train_loss_last_10_logs"] = sum(last) / len(last)
        res["first_train_loss"] = train[0][1]
        step = max(1, len(train) // 20)
        res["loss_curve"] = [[s, round(v, 5)] for s, v in train[::step]]
    if val:
        res["final_val_loss"], res["final_val_loss_step"] = val[-1][1], val[-1][0]
    return res


def read_checkpoint(path: Path) -> dict:
    import torch

    meta = torch.load(path, map_location="cpu", weights_only=True)
    keep = ("threshold", "learned", "one_segment_vi", "threshold_warning", "steps", "train_seconds",
            "train_cpu_seconds", "device", "world_size", "code_version", "resumed_from_step")
    res = {k: meta.get(k) for k in keep}
    table = meta.get("threshold_table") or []
    res["threshold_table"] = table
    best = next((r for r in table if r.get("threshold") == meta.get("threshold")), None)
    if best:
        res["vi_at_threshold"] = {k: best.get(k) for k in ("vi", "split", "merge", "vi_split", "vi_merge") if k in best}
    if meta.get("steps") and meta.get("train_seconds"):
        res["steps_per_s"] = round(meta["steps"] / meta["train_seconds"], 3)
    res["model_pt_bytes"] = path.stat().st_size
    return res


def used_cuda(res: dict) -> dict:
    gpu = res.get("gpu", {})
    mem_rise = None
    if gpu.get("mem_used_max_mib") is not None and gpu.get("mem_used_min_mib") is not None:
        mem_rise = gpu["mem_used_max_mib"] - gpu["mem_used_min_mib"]
    return {"checkpoint_device": res.get("device"), "gpu_util_max_pct": gpu.get("util_max_pct"),
            "gpu_mem_rise_mib": mem_rise, "pid_in_compute_apps": gpu.get("pid") in gpu.get("compute_pids", []),
            "verdict": bool((gpu.get("util_max_pct") or 0) > 0 and (mem_rise or 0) > 100)
            if gpu.get("samples") else None}
