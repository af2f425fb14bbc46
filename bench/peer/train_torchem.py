"""Peer side of ``bench/peer_recipe.py``: torch-em's 3D nearest-neighbour affinity recipe, run in the peer venv.

Runs only in the torch-em venv (never imports neuroadda). Trains with torch-em's own pieces: its ``UNet3d``
(sigmoid output), ``default_segmentation_dataset`` (per-patch standardisation, its default 3D flips) with
``AffinityTransform(offsets 1-step z/y/x, add_mask=True)`` as ``label_transform2`` (label 0 is an ordinary
label, as in torch-em's EM dataset getters), Dice on the affinities through ``LossWrapper`` +
``ApplyAndRemoveMask(multiply)`` (as torch-em's training CLI does for affinities) and
``default_segmentation_trainer`` (AdamW, lr 1e-3, ReduceLROnPlateau) with its ``DefaultTrainer``; validation
patches are cut to fit the held-out slab (``--val-patch fit``), as zero-padded ones mislead torch-em's
best-checkpoint choice and learning-rate schedule here. Stops after
``--iterations`` or once this process has used ``--budget-cpu`` CPU-seconds (then the current epoch ends,
torch-em validates and checkpoints as usual). Predicts the validation slab and the test volume with
``predict_with_halo`` from the best checkpoint (torch-em's default) and writes them as .npy in torch-em's
convention (1 = boundary), with timings in ``result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import no_torchvision  # noqa: E402

PLACEHOLDERS = no_torchvision.install()

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch_em  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch_em.model import UNet3d  # noqa: E402
from torch_em.transform.label import AffinityTransform  # noqa: E402
from torch_em.util.prediction import predict_with_halo  # noqa: E402

OFFSETS = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]


class BudgetSpent(Exception):
    """Raised when the next epoch would start after the CPU budget is used up."""


class BudgetLoader(DataLoader):
    """A torch DataLoader that ends the epoch once this process has used ``budget_s`` CPU-seconds
    (``time.process_time``, counted from process start) and refuses to start another."""

    budget_s: float | None = None

    def _spent(self) -> bool:
        return self.budget_s is not None and time.process_time() >= self.budget_s

    def __iter__(self):
        if self._spent():
            raise BudgetSpent
        for batch in super().__iter__():
            if self._spent():
                return
            yield batch


def affinity_transform() -> AffinityTransform:
    return AffinityTransform(offsets=OFFSETS, add_binary_target=False, add_mask=True)


def roi(text: str) -> tuple[slice, ...]:
    """'z0:z1,y0:y1,x0:x1' -> slices."""
    return tuple(slice(*map(int, part.split(":"))) for part in text.split(","))


def fitting_patch(patch, box, depth: int) -> tuple[int, ...]:
    """``patch`` cut to fit ``box`` on every axis, rounded down to a multiple of 2**depth (UNet3d's stride)."""
    step = 2 ** depth
    return tuple(max(step, min(p, s.stop - s.start) // step * step) for p, s in zip(patch, box))


def loader(args, box, patch, budget_s=None) -> DataLoader:
    """torch-em's default segmentation dataset on ``box`` of the training file, in a loader built the way
    ``torch_em.segmentation.get_data_loader`` builds one (shuffle, pin_memory as there)."""
    ds = torch_em.default_segmentation_dataset(
        args.train, "raw", args.train, "labels", patch_shape=tuple(patch), rois=box,
        label_transform2=affinity_transform(), n_samples=args.n_samples)
    cls = BudgetLoader if budget_s is not None else DataLoader
    out = cls(ds, batch_size=args.batch, shuffle=True, num_workers=0, pin_memory=torch.cuda.is_available())
    out.shuffle = True
    if budget_s is not None:
        out.budget_s = budget_s
    return out


def predict(model, raw: np.ndarray, args) -> np.ndarray:
    """(3, z, y, x) float32 sigmoid outputs (torch-em convention: 1 = boundary), per-block standardisation."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return predict_with_halo(raw, model, gpu_ids=[device], block_shape=tuple(args.block), halo=tuple(args.halo),
                             disable_tqdm=True)


def train(args) -> dict:
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    wall0 = time.perf_counter()
    budget = args.budget_cpu if args.iterations is None else None
    val_patch = tuple(args.patch) if args.val_patch == "train" else fitting_patch(args.patch, roi(args.val_roi),
                                                                                  args.depth)
    train_loader = loader(args, roi(args.train_roi), args.patch, budget_s=budget)
    val_loader = loader(args, roi(args.val_roi), val_patch)
    model = UNet3d(in_channels=1, out_channels=3, depth=args.depth, initial_features=args.features,
                   final_activation="Sigmoid")
    loss = torch_em.loss.LossWrapper(torch_em.loss.DiceLoss(),
                                     transform=torch_em.loss.ApplyAndRemoveMask(masking_method="multiply"))
    trainer = torch_em.default_segmentation_trainer(
        name="peer", model=model, train_loader=train_loader, val_loader=val_loader, loss=loss, metric=loss,
        learning_rate=1e-3, logger=None, compile_model=False, save_root=str(args.out))
    try:
        trainer.fit(iterations=args.iterations if args.iterations is not None else 10**9)
    except BudgetSpent:
        pass
    cpu_train, wall_train = time.process_time(), time.perf_counter() - wall0
    ckpt_dir = os.path.join(args.out, "checkpoints", "peer")
    best = torch.load(os.path.join(ckpt_dir, f"{args.checkpoint}.pt"), map_location="cpu", weights_only=False)
    net = torch_em.util.load_model(ckpt_dir, model=UNet3d(in_channels=1, out_channels=3, depth=args.depth,
                                                          initial_features=args.features,
                                                          final_activation="Sigmoid"),
                                   name=args.checkpoint, device="cpu").eval()
    with h5py.File(args.train, "r") as f:
        val_raw = f["raw"][roi(args.val_roi)]
    with h5py.File(args.test, "r") as f:
        test_raw = f["raw"][:]
    t0, c0 = time.perf_counter(), time.process_time()
    np.save(args.out / "affs_val.npy", predict(net, val_raw, args))
    np.save(args.out / "affs_test.npy", predict(net, test_raw, args))
    return {
        "iterations": int(trainer.iteration), "epochs": int(trainer._epoch), "iterations_per_epoch": len(train_loader),
        "checkpoint": args.checkpoint, "checkpoint_iteration": int(best["iteration"]),
        "checkpoint_epoch": int(best["epoch"]), "checkpoint_val_dice_loss": float(best["current_metric"]),
        "final_lr": float(trainer.optimizer.param_groups[0]["lr"]),
        "train_cpu_s": cpu_train, "train_wall_s": wall_train,
        "predict_cpu_s": time.process_time() - c0, "predict_wall_s": time.perf_counter() - t0,
        "parameters": int(sum(p.numel() for p in net.parameters())), "threads": torch.get_num_threads(),
        "torch_em": torch_em.__version__, "torch": torch.__version__, "torchvision_placeholders": PLACEHOLDERS,
        "budget_cpu_s": budget, "val_patch": list(val_patch),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", help="training HDF5 (keys raw, labels)")
    p.add_argument("--test", help="test HDF5 (key raw)")
    p.add_argument("--train-roi", help="z0:z1,y0:y1,x0:x1 of the training file to train on")
    p.add_argument("--val-roi", help="z0:z1,y0:y1,x0:x1 held out: torch-em's validation loss and the slab predicted")
    p.add_argument("--out", type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--patch", type=int, nargs=3, default=(16, 96, 96))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--features", type=int, default=12)
    p.add_argument("--n-samples", type=int, default=None, help="patches per epoch (torch-em default: volume / patch)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--iterations", type=int, default=None)
    stop.add_argument("--budget-cpu", type=float, default=None, help="CPU-seconds of this process, from its start")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    p.add_argument("--val-patch", choices=("fit", "train"), default="fit",
                   help="validation patches: cut to fit the held-out slab (default) or the training patch, "
                        "which torch-em zero-pads where the slab is thinner (its val Dice then never improves)")
    p.add_argument("--block", type=int, nargs=3, default=(8, 64, 64), help="predict_with_halo inner block")
    p.add_argument("--halo", type=int, nargs=3, default=(4, 16, 16), help="predict_with_halo halo")
    p.add_argument("--affinity-check", nargs=2, metavar=("LABELS_NPY", "OUT_NPY"),
                   help="only apply the recipe's AffinityTransform to a label volume and save it")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.affinity_check:
        np.save(args.affinity_check[1], affinity_transform()(np.load(args.affinity_check[0])))
        return 0
    if args.iterations is None and args.budget_cpu is None:
        p.error("give --iterations or --budget-cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    result = train(args)
    tmp = args.out / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.out / "result.json")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
