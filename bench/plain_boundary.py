"""A model NeuroADDA did not write, on real data: a plain-PyTorch boundary UNet trained on gala-train, saved as
TorchScript + sidecar and as a bioimage.io package (bioimageio.spec's API), for the "Your own models" guide.

The network is the independently written one of the tests (``tests/models/foreign.py``: two levels, no MONAI, one
boundary channel), wider here (16 features). It learns gala-train's label-0 boundary (6.7 % of voxels) with
class-balanced BCE on random 16x64x64 patches of the z-scored volume (Adam 1e-3, seeded).

    nice -n 15 python bench/plain_boundary.py [--steps 400] [--out runs/plain_boundary]

Writes OUT/plain_boundary.pt + OUT/plain_boundary.yaml (sidecar) and OUT/plain_boundary.zip (package).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from neuroadda.data.volume import open_volume  # noqa: E402
from tests.models.foreign import PlainUNet, save_package  # noqa: E402

PATCH = (16, 64, 64)


def train(steps: int, seed: int = 0) -> tuple[PlainUNet, dict]:
    vol = open_volume("gala-train")
    raw = vol.raw.read(tuple(slice(0, n) for n in vol.shape)).astype(np.float32)
    bnd = (vol.labels.read(tuple(slice(0, n) for n in vol.shape)) == 0).astype(np.float32)
    x_all = (raw - raw.mean()) / raw.std()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = PlainUNet(width=16, logits=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    pos = float(bnd.mean())
    t0, losses = time.perf_counter(), []
    for _ in range(steps):
        starts = [rng.integers(0, n - p + 1, size=2) for n, p in zip(vol.shape, PATCH)]
        boxes = [tuple(slice(int(s[k]), int(s[k]) + p) for s, p in zip(starts, PATCH)) for k in range(2)]
        x = torch.from_numpy(np.stack([x_all[b] for b in boxes])[:, None])
        y = torch.from_numpy(np.stack([bnd[b] for b in boxes])[:, None])
        weight = torch.where(y > 0, 0.5 / pos, 0.5 / (1 - pos))  # each class weighs one half
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y, weight=weight)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    net.eval()
    return net, {"steps": steps, "seconds": round(time.perf_counter() - t0, 1),
                 "loss_first_50": float(np.mean(losses[:50])), "loss_last_50": float(np.mean(losses[-50:]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--out", default=str(REPO / "runs" / "plain_boundary"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net, info = train(args.steps)
    net.logits = False  # the TorchScript file outputs probabilities (values: probabilities in its sidecar)
    torch.jit.script(net).save(str(out / "plain_boundary.pt"))
    (out / "plain_boundary.yaml").write_text(yaml.safe_dump({
        "voxel_size": [10.0, 10.0, 10.0], "normalization": "zscore", "output": "boundaries",
        "values": "probabilities", "patch_size": list(PATCH), "stride": [2, 2, 2], "embedding_layer": "encode",
        "source": "gala-train", "name": "plain boundary UNet (gala-train)",
        "description": f"plain-PyTorch 2-level UNet, boundary probability, {args.steps} steps on gala-train"},
        sort_keys=False))
    save_package(net, out / "plain_boundary.zip", out / "package-work")
    print(f"trained {info['steps']} steps in {info['seconds']} s (loss {info['loss_first_50']:.3f} -> "
          f"{info['loss_last_50']:.3f}); wrote {out / 'plain_boundary.pt'} (+ .yaml) and {out / 'plain_boundary.zip'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
