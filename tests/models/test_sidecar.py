"""The sidecar schema, the boundary -> affinity rule and the normalisation specs, against hand-made references."""

import itertools

import numpy as np
import pytest
import torch
import yaml

from neuroadda.data.normalize import normalizer_from_spec
from neuroadda.data.volume import Volume
from neuroadda.errors import InputError
from neuroadda.models.imported import boundary_to_affinity_logits
from neuroadda.models.sidecar import affinity_channels, check_output, read_sidecar, sidecar_path


def test_boundary_rule_matches_a_voxel_by_voxel_reference():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.01, 0.99, (2, 1, 3, 4, 5))
    logits = torch.from_numpy(np.log(b / (1 - b)))
    got = torch.sigmoid(boundary_to_affinity_logits(logits)).numpy()
    want = np.zeros((2, 3, 3, 4, 5))
    for n, c, z, y, x in itertools.product(range(2), range(3), range(3), range(4), range(5)):
        v = (z, y, x)
        u = tuple(max(a - (axis == c), 0) for axis, a in enumerate(v))  # v - e_c, or v on the first plane
        want[n, c, z, y, x] = 1 - max(b[n, 0][v], b[n, 0][u])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_sidecar_is_found_beside_the_model(tmp_path):
    model = tmp_path / "unet.pt"
    model.write_bytes(b"x")
    assert sidecar_path(model) is None
    (tmp_path / "unet.pt.yaml").write_text("{}")
    assert sidecar_path(model) == tmp_path / "unet.pt.yaml"
    (tmp_path / "unet.yaml").write_text("{}")
    assert sidecar_path(model) == tmp_path / "unet.yaml"  # <stem>.yaml first
    assert sidecar_path(tmp_path / "pkg") is None
    (tmp_path / "pkg.yaml").write_text("{}")
    assert sidecar_path(tmp_path / "pkg") == tmp_path / "pkg.yaml"  # a package folder's sidecar


FULL = {"voxel_size": [40, 4, 4], "normalization": {"mean": 120, "std": 30}, "output": "boundaries",
        "values": "logits", "patch_size": [8, 64, 64]}


@pytest.mark.parametrize("edit, fragment", [
    ({"voxel_size": None}, "missing field 'voxel_size'"),
    ({"patch_size": None}, "missing field 'patch_size'"),
    ({"valuez": "logits"}, "field 'valuez'"),
    ({"values": "odds"}, "field 'values'"),
    ({"normalization": {"mean": 1, "std": 0}}, "field 'normalization"),
    ({"threshold": 1.5}, "field 'threshold'"),
])
def test_sidecar_problems_are_one_line_naming_the_field(tmp_path, edit, fragment):
    side = {k: v for k, v in {**FULL, **edit}.items() if v is not None}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(side))
    with pytest.raises(InputError) as e:
        read_sidecar(tmp_path / "m.pt", required=True)
    assert fragment in str(e.value) and str(tmp_path / "m.yaml") in str(e.value) and "\n" not in str(e.value)


def test_a_complete_sidecar_reads(tmp_path):
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(FULL))
    side, path = read_sidecar(tmp_path / "m.pt", required=True)
    assert path == tmp_path / "m.yaml" and side.voxel_size == (40, 4, 4) and side.normalization.std == 30
    with pytest.raises(InputError, match="needs a sidecar YAML"):
        read_sidecar(tmp_path / "other.pt", required=True)
    assert read_sidecar(tmp_path / "other.zip", required=False)[1] is None  # optional beside a package


@pytest.mark.parametrize("kind, channels", [("lsds", 10), ("affinities", 12), ("boundaries", 2), (None, 3)])
def test_unsupported_outputs_are_refused_by_name(kind, channels):
    with pytest.raises(InputError) as e:
        check_output(kind, channels, "m.pt", names=[f"c{i}" for i in range(channels)])
    assert str(e.value).startswith("m.pt: ") and f"{channels} " in str(e.value)


def test_supported_outputs_pass():
    assert check_output("affinities", 3, "m") == "affinities" and check_output("boundaries", 1, "m") == "boundaries"


def test_affinity_offsets_are_reordered_or_refused():
    assert affinity_channels(None, "m") == (0, 1, 2)
    assert affinity_channels([[0, 0, -1], [0, -1, 0], [-1, 0, 0]], "m") == (2, 1, 0)  # x, y, z -> z is channel 2
    for bad in ([[-1, 0, 0], [0, -3, 0], [0, 0, -3]], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[-1, 0, 0]]):
        with pytest.raises(InputError, match="nearest-neighbour"):
            affinity_channels(bad, "m")


def test_normalisation_specs_against_numpy():
    rng = np.random.default_rng(1)
    data = rng.gamma(2.0, 30.0, (10, 20, 20)).astype(np.float32)
    vol = Volume(data, "v", (1, 1, 1))  # small: the whole volume is sampled
    fixed = normalizer_from_spec(vol, {"mode": "fixed", "center": 100.0, "scale": 20.0})
    np.testing.assert_allclose(fixed(data), (data - 100) / 20, rtol=1e-6)
    rng_norm = normalizer_from_spec(vol, {"mode": "range", "low": 1.0, "high": 99.0})
    lo, hi = np.percentile(data, [1, 99])
    np.testing.assert_allclose(rng_norm(data), (data - lo) / (hi - lo), rtol=1e-4, atol=1e-5)
    z = normalizer_from_spec(vol, "zscore")
    np.testing.assert_allclose(z(data), (data - data.mean()) / data.std(), rtol=1e-4, atol=1e-4)
