"""A bioimage.io model package (folder with ``rdf.yaml``/``bioimageio.yaml``, or its zip; format 0.4 or 0.5, read
as 0.5) as a :class:`~neuroadda.models.checkpoint.Backbone`.

What is read, and from where (an optional sidecar beside the package overrides each, :mod:`.sidecar`):

- weights: ``torchscript``, else ``pytorch_state_dict`` (built by bioimageio.core, then scripted or traced);
- one input (batch, channel of 1, z, y, x) and one output with the same axes and spatial size;
- voxel size: the input's spatial ``scale`` and ``unit``, in nm;
- normalisation: ``config.neuroadda.normalization`` of a NeuroADDA package (per volume, as NeuroADDA trained
  it), else the input's preprocessing: zero_mean_unit_variance -> z-score per volume, fixed_zero_mean_unit_variance
  and scale_linear -> fixed, scale_range -> percentile range per volume;
- output kind: ``config.neuroadda.output``, else one channel named like a boundary or membrane map; a
  ``sigmoid`` postprocessing step means the weights output logits, none means probabilities;
- stride and patch: the input's size step, and ``config.neuroadda.patch_size`` or the test input's shape.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from neuroadda.errors import InputError

UNIT_NM = {"nanometer": 1.0, "micrometer": 1e3, "millimeter": 1e6, "angstrom": 0.1, "picometer": 1e-3}
BOUNDARY_NAME = re.compile(r"bound|membran|contour|edge", re.IGNORECASE)
IGNORED_OPS = ("ensure_dtype",)


def quiet_bioimageio() -> None:
    """Keep bioimageio's loguru chatter out of the user's terminal (our own messages say what matters)."""
    from loguru import logger

    logger.disable("bioimageio")


def describe(path: Path):
    """The package's 0.5 model description; a one-line InputError for a broken or missing one."""
    try:
        from bioimageio.spec import InvalidDescr, load_description
    except ImportError:
        raise InputError(f"{path}: reading bioimage.io packages needs bioimageio.core: "
                         "pip install 'neuroadda[bioimageio]'") from None
    quiet_bioimageio()
    try:
        descr = load_description(path, format_version="latest", perform_io_checks=False)
    except Exception as e:  # unreadable zip/YAML: many exception types
        raise InputError(f"{path}: not a readable bioimage.io package ({e.__class__.__name__}: "
                         f"{str(e).strip().splitlines()[0][:160]})") from None
    if isinstance(descr, InvalidDescr):
        raise InputError(f"{path}: not a valid bioimage.io package ({first_error(descr.validation_summary)})")
    if descr.type != "model":
        raise InputError(f"{path}: a bioimage.io {descr.type}, not a model")
    return descr


def first_error(summary) -> str:
    """``field 'a.b': message`` of the first error of a bioimageio validation summary."""
    for d in summary.details:
        for e in d.errors:
            loc = ".".join(str(x) for x in e.loc)
            return f"field '{loc}': {e.msg}" if loc else e.msg
    return summary.status


def _axes(tensor, where: str):
    """The spatial axes (z, y, x) of a tensor whose axes must be batch, channel, z, y, x."""
    kinds = [(a.type, str(a.id)) for a in tensor.axes]
    want = [("batch", "batch"), ("channel", "channel"), ("space", "z"), ("space", "y"), ("space", "x")]
    if [k for k, _ in kinds] != [k for k, _ in want] or [i for _, i in kinds[2:]] != ["z", "y", "x"]:
        raise InputError(f"{where}: axes {[i for _, i in kinds]}; NeuroADDA takes 3-D models with axes "
                         "batch, channel, z, y, x")
    return tensor.axes[2:]


def _voxel_size(axes, where: str) -> list[float] | None:
    if any(a.unit is None for a in axes):
        return None
    if any(str(a.unit) not in UNIT_NM for a in axes):
        raise InputError(f"{where}: spatial unit {axes[0].unit} is not a length NeuroADDA converts to nm")
    return [float(a.scale) * UNIT_NM[str(a.unit)] for a in axes]


def _normalization(ops, where: str) -> str | dict:
    """A normalisation spec from the input's preprocessing steps."""
    steps = [op for op in ops if op.id not in IGNORED_OPS]
    if len(steps) > 1:
        raise InputError(f"{where}: preprocessing {[op.id for op in steps]}: NeuroADDA applies one normalisation")
    if not steps:
        return "none"
    op = steps[0]
    k = op.kwargs
    if op.id == "zero_mean_unit_variance":
        return "zscore"
    if op.id == "fixed_zero_mean_unit_variance" and hasattr(k, "mean") and isinstance(k.mean, float):
        return {"mode": "fixed", "center": float(k.mean), "scale": float(k.std)}
    if op.id == "scale_linear" and isinstance(getattr(k, "gain", None), float) and k.gain != 0:
        return {"mode": "fixed", "center": -float(k.offset) / float(k.gain), "scale": 1.0 / float(k.gain)}
    if op.id == "scale_range":
        return {"mode": "range", "low": float(k.min_percentile), "high": float(k.max_percentile)}
    raise InputError(f"{where}: preprocessing '{op.id}' (with these arguments) is not one NeuroADDA applies "
                     "(zero_mean_unit_variance, fixed_zero_mean_unit_variance, scale_linear, scale_range)")


def _values(ops, where: str) -> str:
    steps = [op.id for op in ops if op.id not in IGNORED_OPS]
    if not steps:
        return "probabilities"
    if steps == ["sigmoid"]:
        return "logits"
    raise InputError(f"{where}: postprocessing {steps}: NeuroADDA takes probabilities or logits with a sigmoid")


def _archive(descr, where: str) -> bytes:
    """TorchScript bytes of the package's weights: its torchscript entry, else its pytorch_state_dict model
    scripted (or traced on the test input)."""
    import torch

    w = descr.weights
    if w.torchscript is not None:
        return w.torchscript.get_reader().read()
    if w.pytorch_state_dict is None:
        have = [name for name, entry in w if entry is not None]
        raise InputError(f"{where}: weights {have}; NeuroADDA runs torchscript or pytorch_state_dict weights")
    try:
        from bioimageio.core.backends.pytorch_backend import load_torch_model

        model = load_torch_model(w.pytorch_state_dict, devices=["cpu"]).eval()
    except Exception as e:
        raise InputError(f"{where}: its pytorch_state_dict weights do not load ({e.__class__.__name__}: "
                         f"{str(e).strip().splitlines()[0][:160]})") from None
    buf = io.BytesIO()
    try:
        scripted = torch.jit.script(model)
    except Exception:
        from bioimageio.spec.utils import load_array

        example = torch.from_numpy(load_array(descr.inputs[0].test_tensor)).float()
        scripted = torch.jit.trace(model, example, check_trace=False)
    torch.jit.save(scripted, buf)
    return buf.getvalue()


def load_package(path: str | Path):
    """The package at ``path`` as a Backbone (network in eval mode, checked on a zero input before any work)."""
    from neuroadda.models.imported import Adapter, ImportedNet, check_runs
    from neuroadda.models.record import imported_backbone
    from neuroadda.models.sidecar import affinity_channels, check_output, normalization_spec, read_sidecar

    path = Path(path)
    root = path.parent if path.is_file() and path.suffix == ".yaml" else path  # rdf.yaml -> its package folder
    descr = describe(path)
    where = str(root)
    side, side_path = read_sidecar(root, required=False)
    ours = dict((descr.config.model_extra or {}).get("neuroadda") or {})
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise InputError(f"{where}: {len(descr.inputs)} inputs and {len(descr.outputs)} outputs; NeuroADDA takes "
                         "models with one input and one output")
    inp, out = descr.inputs[0], descr.outputs[0]
    space = _axes(inp, f"{where}: input '{inp.id}'")
    _axes(out, f"{where}: output '{out.id}'")
    if len(inp.axes[1].channel_names) != 1:
        raise InputError(f"{where}: input '{inp.id}' has {len(inp.axes[1].channel_names)} channels; NeuroADDA "
                         "feeds one (the EM intensities)")
    names = [str(n) for n in out.axes[1].channel_names]
    kind = side.output or ours.get("output")
    if kind is None and len(names) == 1 and BOUNDARY_NAME.search(f"{names[0]} {out.id} {out.description}"):
        kind = "boundaries"
    kind = check_output(kind, len(names), f"{where}: output '{out.id}'", names)
    voxel = list(side.voxel_size) if side.voxel_size else ours.get("voxel_size") or _voxel_size(space, where)
    if voxel is None:
        raise InputError(f"{where}: its input axes give no physical unit, so the voxel size is unknown; give it in "
                         f"a sidecar ({root.with_suffix('.yaml').name}: voxel_size: [z, y, x] nm)")
    stride = [a.size.step if hasattr(a.size, "step") else int(a.size) for a in space]
    if side.stride:
        stride = list(side.stride)
    patch = side.patch_size or ours.get("patch_size") or _test_shape(inp)
    norm = (normalization_spec(side.normalization) if side.normalization is not None
            else ours.get("normalization") or _normalization(inp.preprocessing, f"{where}: input '{inp.id}'"))
    adapter = Adapter(output=kind, values=side.values or _values(out.postprocessing, f"{where}: output '{out.id}'"),
                      channels=affinity_channels(side.offsets or ours.get("offsets"), where)
                      if kind == "affinities" else (0, 1, 2),
                      stride=tuple(int(s) for s in stride), embedding_layer=side.embedding_layer,
                      feature_layer=side.feature_layer)
    net = ImportedNet.from_archive(_archive(descr, where), adapter)
    check_runs(net, patch, where, len(names))
    cite = "; ".join(c.text for c in descr.cite)
    return imported_backbone(net, {
        **{k: ours[k] for k in ("threshold_table", "learned", "target") if k in ours},
        "card": ours.get("training_card"),
        "origin": "bioimage.io", "model_file": str(root), "sidecar": str(side_path) if side_path else None,
        "name": side.name or descr.name, "description": side.description or descr.description,
        "citation": side.citation or cite, "source": side.source or ours.get("source"),
        "voxel_size": [float(v) for v in voxel], "patch_size": [int(p) for p in patch], "normalization": norm,
        "threshold": side.threshold if side.threshold is not None else ours.get("threshold"),
        "labels_kind": side.labels_kind or ours.get("labels_kind"),
        "package_code_version": ours.get("code_version")})


def _test_shape(inp) -> list[int]:
    """The spatial shape of the input's test tensor (a size the model is known to take)."""
    from bioimageio.spec.utils import load_array

    return [int(n) for n in load_array(inp.test_tensor).shape[2:]]
