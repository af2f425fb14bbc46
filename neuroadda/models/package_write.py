"""Any :class:`~neuroadda.models.checkpoint.Backbone` as a bioimage.io model package (format 0.5), through
bioimageio.spec's own API, so napari, ilastik and bioimageio.core run it.

The package holds: TorchScript weights (the network traced: intensities -> affinity logits) and, for our own
UNet, ``pytorch_state_dict`` weights (architecture ``neuroadda.models.unet.AffinityUNet``); one input ``raw``
(batch, channel, z, y, x; voxel size in nm; sizes ``2 x stride + n x stride``) with the fitted normalisation as
``fixed_zero_mean_unit_variance``; one output ``affinities`` (3 channels z, y, x: channel c at v is the
affinity of edge (v, v - e_c)) with ``sigmoid`` postprocessing; test input/output tensors; a README with the
calibration table; the citations; the training data's card as an attachment; and NeuroADDA's own settings
under ``config.neuroadda``, so that importing the package back reproduces the checkpoint's predictions.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from neuroadda.models.checkpoint import Backbone, code_version, plain
from neuroadda.models.imported import ImportedNet
from neuroadda.models.sidecar import NEAREST

METHOD = ("Sawmya S, et al. NeuroADDA: active discriminative domain adaptation in connectomics. "
          "arXiv:2503.06196 (2025)", "10.48550/arXiv.2503.06196")
DOI = re.compile(r"doi:\s*(10\.\d{4,9}/\S+?)\.?(?=\s|$)", re.IGNORECASE)
TAGS = ["neuroadda", "electron-microscopy", "connectomics", "affinities", "3d", "instance-segmentation", "pytorch"]


def min_size(traced, stride, patch) -> list[int]:
    """The smallest input (per axis) the package advertises: 2 x stride when the network runs on it, else the
    patch (a size it is known to take)."""
    small = [2 * s for s in stride]
    try:
        with torch.inference_mode():
            traced(torch.zeros([1, 1] + small))
        return small
    except Exception:  # a foreign network that needs more context
        return [int(p) for p in patch]


def trace(net) -> torch.jit.ScriptModule:
    """The network in eval mode traced on one patch of zeros (convolutions and slices: any valid size runs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(net.eval(), torch.zeros((1, 1, *[2 * s for s in net.total_stride])),
                               check_trace=False)


def citations(card: dict | None) -> list[tuple[str, str]]:
    """(text, doi) of the method, then of every DOI in the training card's citation."""
    out = [METHOD]
    text = (card or {}).get("citation") or ""
    start = 0
    for m in DOI.finditer(text):
        out.append((text[start:m.end()].strip(" ;."), m.group(1)))
        start = m.end()
    return out


def readme(bb: Backbone, name: str, norm, voxel, stride, weights: list[str]) -> str:
    """The package's documentation: what it does, how to run and segment, where it came from, its validation."""
    meta = bb.meta
    card = meta.get("card") or {}
    t = bb.threshold
    lines = [f"# {name}", "",
             "A 3-D affinity network for neuron segmentation of electron-microscopy volumes, exported by "
             f"NeuroADDA ({code_version()}).", "",
             "## Input and output", "",
             f"- input `raw`: one channel of EM intensities, axes (batch, channel, z, y, x), voxel size "
             f"{voxel[0]:g} x {voxel[1]:g} x {voxel[2]:g} nm (z, y, x); spatial sizes multiples of {tuple(stride)}.",
             "- preprocessing: " + (f"`(x - {norm.center:.6g}) / {norm.scale:.6g}`, the z-score NeuroADDA "
                                    "fitted on the training volume (NeuroADDA itself refits it on each volume)"
                                    if norm is not None and norm.mode != "none" else "none"),
             "- output `affinities`: 3 channels (z, y, x); channel c at voxel v is the probability that v and "
             "v - e_c belong to the same neuron (the waterz convention), after a sigmoid.",
             f"- weights: {', '.join(weights)}.", "",
             "## Segmenting", "",
             "Agglomerate the affinities with waterz (or `neuroadda segment`) at threshold "
             f"{t:.2f} ({bb.threshold_region['what']})." if t is not None else "", "",
             "## Training", "",
             f"- kind: {meta.get('kind', 'backbone')}; origin: {bb.origin}"
             + (f"; fine-tuned on {meta['target']} from {meta.get('init')}" if meta.get("target") else "")
             + (f"; source data {meta['source']}" if meta.get("source") else ""),
             f"- training data: {card.get('name', 'unknown')}: {card.get('description', '').strip()}",
             f"- licence of the training data: {card.get('license', 'unknown')}".rstrip(), "",
             "# Validation", ""]
    table = meta.get("threshold_table") or []
    if table:
        lines += [f"VI (bits, lower is better) on the {bb.threshold_region['what']} per waterz threshold:", "",
                  "| threshold | VI split | VI merge | VI |", "|---:|---:|---:|---:|"]
        lines += [f"| {r['threshold']:g} | {r['vi_split']:.3f} | {r['vi_merge']:.3f} | {r['vi']:.3f} |" for r in table]
        if meta.get("learned") is False:
            lines += ["", "**Calibration found this model no better than one segment (learned: false).**"]
    else:
        lines.append("No calibration table was recorded with this model.")
    lines += ["", "## Citation", ""] + [f"- {text}" + ("" if doi in text else f" doi:{doi}")
                                         for text, doi in citations(card)]
    if card.get("citation") and not DOI.search(card["citation"]):
        lines.append(f"- training data: {card['citation']}")
    return "\n".join(lines) + "\n"


def cover(raw: np.ndarray, affs: np.ndarray, path: Path) -> Path:
    """A 2:1 PNG: the middle z slice of the test input beside its mean affinity."""
    import imageio.v3 as iio

    def u8(a):
        a = np.asarray(a, np.float64)
        lo, hi = np.percentile(a, [1, 99])
        return (np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)

    z = raw.shape[0] // 2
    left, right = u8(raw[z]), (np.clip(affs[:, z].mean(0), 0, 1) * 255).astype(np.uint8)
    side = max(left.shape)
    pad = [(0, side - left.shape[0]), (0, side - left.shape[1])]
    iio.imwrite(path, np.concatenate([np.pad(left, pad), np.pad(right, pad)], 1))
    return path


def build_package(bb: Backbone, raw: np.ndarray, norm, work: Path, *, name: str, authors: list[str],
                  license: str):
    """A bioimage.io 0.5 ModelDescr for ``bb`` with its files in ``work``. ``raw``: (z, y, x) test input, raw
    intensities; ``norm``: the fitted :class:`~neuroadda.data.normalize.Normalizer` (None: per-tensor z-score)."""
    from bioimageio.spec.model import v0_5 as m

    from neuroadda.models.package_read import quiet_bioimageio

    quiet_bioimageio()
    net = bb.net.eval()
    stride = [int(s) for s in net.total_stride]
    voxel = [float(v) for v in bb.voxel_size]
    traced = trace(net)
    traced.save(str(work / "weights.torchscript.pt"))
    x = raw.astype(np.float32)[None, None]
    xn = norm(raw)[None, None] if norm is not None else (x - x.mean()) / max(float(x.std()), 1e-6)
    with torch.inference_mode():
        y = torch.sigmoid(traced(torch.from_numpy(np.ascontiguousarray(xn, np.float32)))).numpy()
    np.save(work / "test_input.npy", x)
    np.save(work / "test_output.npy", y.astype(np.float32))
    version = m.Version(torch.__version__.split("+")[0])
    weights = {"torchscript": m.TorchscriptWeightsDescr(source=work / "weights.torchscript.pt",
                                                        pytorch_version=version)}
    if not isinstance(net, ImportedNet):  # our UNet: its state dict and architecture too
        torch.save(net.state_dict(), work / "weights.pt")
        weights["pytorch_state_dict"] = m.PytorchStateDictWeightsDescr(
            source=work / "weights.pt", pytorch_version=version,
            architecture=m.ArchitectureFromLibraryDescr(import_from="neuroadda.models.unet",
                                                        callable=m.Identifier("AffinityUNet"),
                                                        kwargs=plain(net.hparams)))
        weights["torchscript"] = m.TorchscriptWeightsDescr(source=work / "weights.torchscript.pt",
                                                           pytorch_version=version, parent="pytorch_state_dict")
    card = bb.meta.get("card")
    attachments = []
    if card:
        import yaml

        (work / "training_card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
        attachments.append(m.FileDescr(source=work / "training_card.yaml"))
    (work / "README.md").write_text(readme(bb, name, norm, voxel, stride, list(weights)))
    rid = m.TensorId("raw")
    lo = min_size(traced, stride, bb.patch_size)
    pre = ([m.FixedZeroMeanUnitVarianceDescr(kwargs=m.FixedZeroMeanUnitVarianceKwargs(
        mean=float(norm.center), std=float(norm.scale)))] if norm is not None and norm.mode != "none"
        else [] if norm is not None else [m.ZeroMeanUnitVarianceDescr()])
    inp = m.InputTensorDescr(
        id=rid, description="EM intensities", test_tensor=m.FileDescr(source=work / "test_input.npy"),
        axes=[m.BatchAxis(), m.ChannelAxis(channel_names=[m.Identifier("raw")])]
        + [m.SpaceInputAxis(id=m.AxisId(a), size=m.ParameterizedSize(min=lo[i], step=stride[i]), scale=voxel[i],
                            unit="nanometer") for i, a in enumerate("zyx")], preprocessing=pre)
    out = m.OutputTensorDescr(
        id=m.TensorId("affinities"), description="nearest-neighbour affinities: channel c at v is the edge "
                                                 "(v, v - e_c), c = z, y, x",
        test_tensor=m.FileDescr(source=work / "test_output.npy"), postprocessing=[m.SigmoidDescr()],
        axes=[m.BatchAxis(), m.ChannelAxis(channel_names=[m.Identifier(f"affinity_{a}") for a in "zyx"])]
        + [m.SpaceOutputAxis(id=m.AxisId(a), size=m.SizeReference(tensor_id=rid, axis_id=m.AxisId(a)),
                             scale=voxel[i], unit="nanometer") for i, a in enumerate("zyx")])
    cover(raw, y[0], work / "cover.png")
    ours = {"format": "neuroadda-package-v1", "output": "affinities", "offsets": [list(o) for o in NEAREST],
            "threshold": bb.threshold, "threshold_table": bb.meta.get("threshold_table"), "learned": bb.learned,
            "voxel_size": voxel, "patch_size": list(bb.patch_size), "normalization": bb.normalization,
            "normalizer": norm.to_dict() if norm is not None else None, "labels_kind": bb.labels_kind,
            "kind": bb.meta.get("kind"), "origin": bb.origin, "source": bb.meta.get("source"),
            "target": bb.meta.get("target"), "training_card": card, "code_version": code_version(),
            "checkpoint_code_version": bb.meta.get("code_version")}
    return m.ModelDescr(
        name=name, description=f"3-D nearest-neighbour affinities for EM neuron segmentation at "
                               f"{'x'.join(f'{v:g}' for v in voxel)} nm, from NeuroADDA",
        authors=[m.Author(name=a) for a in authors], cite=[m.CiteEntry(text=t, doi=m.Doi(d)) for t, d in
                                                           citations(card)],
        license=m.LicenseId(license), documentation=m.FileDescr(source=work / "README.md"),
        covers=[m.FileDescr(source=work / "cover.png")], attachments=attachments, tags=TAGS, inputs=[inp],
        outputs=[out], weights=m.WeightsDescr(**weights), config=m.Config(neuroadda=plain(ours)))


def write_package(descr, out: Path, *, zip_too: bool = False) -> list[Path]:
    """The package as a folder at ``out`` (and ``out.zip``), each written under a temporary name and renamed."""
    from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder

    from neuroadda.report import atomic_path, finalize_zarr

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_bioimageio_package_as_folder(descr, output_path=tmp)
        tmp.chmod(0o755)  # mkdtemp's 0o700 would hide the package from other users
        finalize_zarr(tmp, out)  # renames a finished folder into place (any folder, not only zarr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    written = [out]
    if zip_too:
        target = out.with_name(out.name + ".zip")
        with atomic_path(target) as t:
            save_bioimageio_package(descr, output_path=t.with_suffix(".zip"))
            t.with_suffix(".zip").rename(t)
        written.append(target)
    return written
