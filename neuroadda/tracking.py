"""Experiment tracking through Lightning loggers: ``csv`` (default), ``wandb`` or ``none``.

W&B runs go offline automatically when no API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry for
api.wandb.ai) and ``WANDB_MODE`` is unset; sync them later with ``wandb sync OUT/wandb/offline-run-*``.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path

import numpy as np

from neuroadda.vocab import LOGGERS  # noqa: F401  (re-exported)

PROJECT = os.environ.get("NEUROADDA_WANDB_PROJECT", "neuroadda")


def wandb_mode() -> str:
    """``WANDB_MODE`` if set, else "online" with an API key configured, else "offline"."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


def make_logger(kind: str, out_dir: str | Path, *, name: str, config: dict | None = None, tags=()):
    """A Lightning logger writing under ``out_dir`` (False for "none")."""
    if kind == "none":
        return False
    if kind == "csv":
        from pytorch_lightning.loggers import CSVLogger

        return CSVLogger(str(out_dir), name="logs")
    if kind == "wandb":
        from pytorch_lightning.loggers import WandbLogger

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        logger = WandbLogger(project=PROJECT, name=name, save_dir=str(out_dir), offline=wandb_mode() == "offline",
                             tags=list(tags), settings=_settings())
        if config:
            logger.log_hyperparams({"neuroadda": config})
        return logger
    raise ValueError(f"logger must be one of {LOGGERS}, got {kind!r}")


def _settings():
    import wandb

    return wandb.Settings(silent=True, console="off")


def card_checksums(card: dict | None) -> dict:
    """{filename: sha256} of a dataset card's files (recorded by W&B runs next to the card)."""
    return {f["filename"]: f.get("sha256") for f in (card or {}).get("files", [])}


def log_summary(logger, metrics: dict) -> None:
    """Final metrics (VI split/merge, threshold, MMD², ...) into the run summary (CSV: one more metrics row)."""
    if not logger:
        return
    flat = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating, np.integer))}
    if hasattr(logger, "experiment") and type(logger).__name__ == "WandbLogger":
        for k, v in flat.items():
            logger.experiment.summary[k] = v
    else:
        logger.log_metrics(flat)
        logger.save()


def log_slices(logger, key: str, raw: np.ndarray, affs: np.ndarray | None = None,
               seg: np.ndarray | None = None) -> None:
    """The middle z slice of raw / mean affinity / segmentation (random colours) as images (W&B only)."""
    if not logger or type(logger).__name__ != "WandbLogger":
        return
    z = raw.shape[0] // 2
    images, captions = [_to_uint8(raw[z])], ["raw"]
    if affs is not None:
        images.append(_to_uint8(affs[:, z].mean(0)))
        captions.append("mean affinity")
    if seg is not None:
        from neuroadda.report import label_colors

        images.append(label_colors(seg[z]))
        captions.append("segmentation")
    logger.log_image(key=key, images=images, caption=captions)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)


def finish(logger) -> None:
    if logger and type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


def read_offline_run(run_dir: str | Path, timeout: float = 60.0) -> dict:
    """Summary, config and logged history keys of an offline W&B run, read from its ``run-*.wandb`` log
    (LevelDB-style: a 7-byte ':W&B' header, 32 KiB blocks of records <crc32, length, type> + protobuf bytes),
    so an offline run can be checked without syncing it. wandb-core may still be flushing the log after
    ``wandb.finish()`` returns, so this waits up to ``timeout`` s for the run's closing ``exit`` record."""
    import json
    import time

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file")
    deadline = time.monotonic() + timeout
    while True:
        records = _wandb_records(files[0])
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out = {"summary": {}, "config": {}, "history_keys": set()}
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "summary":
            for item in rec.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            out["history_keys"].update(item.key or "/".join(item.nested_key) for item in rec.history.item)
    return out


def _wandb_records(path: Path) -> list:
    """The complete protobuf records of one ``run-*.wandb`` log (a record still being written is left out)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run log")
    pos, block, chunks, records = 7, 32768, [], []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too small for a header: skip to the next block
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        chunks.append(chunk)
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(b"".join(chunks))
            records.append(rec)
            chunks = []
    return records
