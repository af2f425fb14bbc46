"""Dataset cards in datasets/: they load, names are unique, bundled files match their checksums."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from neuroadda.data import cards as cards_mod
from neuroadda.data.cards import all_cards, datasets_dir, get_card, load_card
from neuroadda.errors import ConfigError, InputError

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
CARD_FILES = sorted(p for p in DATASETS.glob("*.yaml") if p.name != "phylogeny.yaml")
BUNDLED = ["neuroproof", "gala-train", "gala-test", "isbi2012", "vnc-gerhard2013"]
RAW_ONLY = ["kasthuri2015-mouse", "h01-crop", "platynereis-vergara2021"]  # bundled, no labels
PUBLIC = ["snemi3d", "cremi-a", "cremi-b", "cremi-c", "fib25"]
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(autouse=True)
def _real_datasets_dir(monkeypatch):
    monkeypatch.delenv("NEUROADDA_DATASETS", raising=False)
    cards_mod._all_cards.cache_clear()
    yield
    cards_mod._all_cards.cache_clear()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cards_folder_is_the_repository_one():
    assert datasets_dir().resolve() == DATASETS.resolve()
    assert len(CARD_FILES) >= len(BUNDLED) + len(PUBLIC)


@pytest.mark.parametrize("path", CARD_FILES, ids=lambda p: p.stem)
def test_every_card_loads_and_is_consistent(path):
    card = load_card(path)
    assert card.name == path.stem, "card file must be named <name>.yaml"
    assert card.card_path == str(path)
    assert re.fullmatch(r"[A-Z][a-z]+ [a-z]+", card.species), card.species
    assert all(v > 0 for v in card.voxel_size_nm)
    assert card.shape is None or all(n > 0 for n in card.shape)
    assert card.files and card.license.strip() and card.citation.strip()
    if card.name in RAW_ONLY:
        assert card.labels is None and card.labels_kind is None and card.bundled
        assert "RAW ONLY" in card.description, "raw-only cards say so in their description"
    else:
        assert card.labels is not None and card.labels_kind in ("3d_instance", "2d_instance_per_slice")
    names = [f.filename for f in card.files]
    assert len(names) == len(set(names))
    for f in card.files:
        assert f.sha256 is None or HEX64.match(f.sha256), f"{f.filename}: sha256 must be lowercase hex"
        assert f.url is None or f.url.startswith("https://"), f.url
    archives = [f for f in card.files if f.unpack]
    # arrays live in a listed file, or come out of a listed archive
    for ref in (r for r in (card.raw, card.labels) if r is not None):
        assert ref.file in names or archives, f"{ref.file} is not one of the card's files"
    if card.bundled:
        assert not card.downloadable, "bundled files are converted: no download URL"
        assert card.local_dir.startswith("data/")
    else:
        assert card.homepage and card.homepage.startswith(("http://", "https://"))
    if card.local_only:  # a local copy never bundled: the card says why and where it is looked for
        assert "NOT" in card.license and "NEUROADDA_DATA" in card.notes
    elif not card.downloadable and not card.bundled:
        assert card.notes and "fetch" in card.notes, "cloud-only cards must say why fetch cannot download them"
    if any(f.url and not f.sha256 for f in card.files):
        assert "checksum" in card.notes.lower()


def test_names_are_unique_and_all_cards_sees_every_file():
    names = [yaml.safe_load(p.read_text())["name"] for p in CARD_FILES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert sorted(all_cards()) == sorted(names)
    for required in BUNDLED + RAW_ONLY + PUBLIC:
        assert required in names


@pytest.mark.parametrize("name", BUNDLED + RAW_ONLY)
def test_bundled_files_exist_and_match_card(name):
    card = get_card(name)
    assert card.bundled and card.directory() == DATASETS / card.local_dir
    assert (DATASETS / "data" / "README.md").is_file()
    for f in card.files:
        p = card.file_path(f.filename)
        assert p.is_file(), p
        assert p.stat().st_size == f.size_bytes
        assert _sha256(p) == f.sha256
    with h5py.File(card.file_path(card.raw.file), "r") as h:
        raw = h[card.raw.key]
        assert raw.shape == card.shape and raw.dtype == np.uint8
        assert tuple(raw.attrs["resolution_nm"]) == card.voxel_size_nm
        if card.labels is None:
            assert set(h) == {card.raw.key} and raw.attrs["labels_kind"].startswith("none")
            assert card.species.split()[0] in raw.attrs["organism"]  # attribution travels with the file
            assert raw.attrs["license"] and raw.attrs["source"]
        else:
            assert h[card.labels.key].shape == card.shape
            assert raw.attrs["labels_kind"] == card.labels_kind


@pytest.mark.parametrize("name", RAW_ONLY)
def test_raw_only_crops_are_at_most_15_mib(name):
    for f in get_card(name).files:
        assert f.size_bytes <= 15 * 2**20, f"{f.filename}: {f.size_bytes} bytes (limit 15 MiB)"


def test_raw_only_crops_are_centre_crops_of_the_shared_files():
    """Each bundled crop equals the centre of its shared/data/em original (skipped where that is absent)."""
    shared = DATASETS.parents[1] / "shared" / "data" / "em"
    if not shared.is_dir():
        pytest.skip(f"{shared} not present")
    originals = {"kasthuri2015-mouse": "mouse_s1cortex_atumsem_kasthuri2015/rawonly_snemi3d_test_crop.h5",
                 "h01-crop": "human_temporalcortex_mssem_h01/rawonly_z3737-3773.h5",
                 "platynereis-vergara2021": "platynereis_larva_sbem_vergara2021/rawonly_membrane_unet_test_input.h5"}
    for name, rel in originals.items():
        card = get_card(name)
        with h5py.File(shared / rel, "r") as a, h5py.File(card.file_path(card.raw.file), "r") as b:
            full, crop = a["raw"], b["raw"][()]
            (nz, ny, nx), (cz, cy, cx) = full.shape, crop.shape
            y0, x0 = (ny - cy) // 2, (nx - cx) // 2
            assert cz == nz and np.array_equal(full[:, y0:y0 + cy, x0:x0 + cx], crop), name
            assert tuple(a["raw"].attrs["resolution_nm"]) == card.voxel_size_nm


def test_public_cards_with_urls_have_checksums():
    for name in PUBLIC:
        card = get_card(name)
        assert card.downloadable and not card.bundled
        for f in card.files:
            assert f.url and HEX64.match(f.sha256)
    assert get_card("snemi3d").voxel_size_nm[1:] == (6.0, 6.0)
    assert get_card("cremi-b").voxel_size_nm == (40.0, 4.0, 4.0)


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(InputError) as e:
        get_card("gala-tset")
    assert "gala-tset" in str(e.value) and "gala-test" in str(e.value)


def _write_variant(tmp_path, key_from, key_to):
    data = yaml.safe_load((DATASETS / "gala-test.yaml").read_text())
    data[key_to] = data.pop(key_from)
    path = tmp_path / "gala-test.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_misspelt_optional_field_is_a_config_error_naming_field_and_file(tmp_path):
    path = _write_variant(tmp_path, "homepage", "homepag")
    with pytest.raises(ConfigError) as e:
        load_card(path)
    msg = str(e.value)
    assert str(path) in msg and "'homepag'" in msg


def test_misspelt_required_field_is_a_config_error_naming_the_file(tmp_path):
    path = _write_variant(tmp_path, "voxel_size_nm", "voxel_sise_nm")
    with pytest.raises(ConfigError) as e:
        load_card(path)
    msg = str(e.value)
    assert str(path) in msg and ("voxel_sise_nm" in msg or "voxel_size_nm" in msg)


def test_misspelt_card_in_datasets_dir_fails_the_listing(tmp_path, monkeypatch):
    _write_variant(tmp_path, "homepage", "homepag")
    monkeypatch.setenv("NEUROADDA_DATASETS", str(tmp_path))
    cards_mod._all_cards.cache_clear()
    with pytest.raises(ConfigError, match="homepag"):
        all_cards()


def _crop_cards(tmp_path, monkeypatch, crop="[[0, 6], [0, 40], [20, 40]]"):
    """A local-only file in a data home and two cards on it: the whole file and a crop of it."""
    from tests.conftest import blob_labels, raw_from_labels

    home, folder = tmp_path / "home", tmp_path / "cards"
    (home / "lab_vol").mkdir(parents=True)
    folder.mkdir()
    lab = blob_labels((6, 40, 40), cell=6, seed=4)
    with h5py.File(home / "lab_vol" / "vol.h5", "w") as f:
        f["raw"], f["labels"] = raw_from_labels(lab, seed=4), lab
    base = {"description": "d", "organism": "o", "species": "Mus musculus", "tissue": "t", "modality": "ssSEM",
            "voxel_size_nm": [30.0, 6.0, 6.0], "files": [{"filename": "vol.h5"}],
            "raw": {"file": "vol.h5", "key": "raw"}, "labels": {"file": "vol.h5", "key": "labels"},
            "labels_kind": "3d_instance", "license": "NOT bundled", "citation": "c",
            "local_dir": "data/lab_vol", "bundle": False, "notes": "found through NEUROADDA_DATA"}
    (folder / "whole.yaml").write_text(yaml.safe_dump({**base, "name": "whole"}))
    (folder / "half.yaml").write_text(yaml.safe_dump({**base, "name": "half", "crop": yaml.safe_load(crop)}))
    monkeypatch.setenv("NEUROADDA_DATASETS", str(folder))
    monkeypatch.setenv("NEUROADDA_DATA", str(home))
    cards_mod._all_cards.cache_clear()
    return home / "lab_vol" / "vol.h5", lab


def test_a_crop_card_reads_its_box_of_a_shared_local_file(tmp_path, monkeypatch):
    from neuroadda.data.cards import card_for_file
    from neuroadda.data.volume import open_volume

    path, lab = _crop_cards(tmp_path, monkeypatch)
    half = open_volume("half", require_labels=True)
    assert half.shape == (6, 40, 20) and not get_card("half").bundled and get_card("half").local_only
    assert np.array_equal(half.labels.read((slice(1, 5), slice(3, 30), slice(2, 18))), lab[1:5, 3:30, 22:38])
    with h5py.File(path) as f:
        assert np.array_equal(half.raw.read((slice(0, 6), slice(0, 40), slice(0, 20))), f["raw"][:, :, 20:40])
    # the file given by path is the whole file, never a crop card
    assert card_for_file(path, None).name == "whole"
    assert open_volume(str(path)).shape == (6, 40, 40)


def test_a_crop_outside_the_file_and_a_missing_local_file_are_one_line(tmp_path, monkeypatch):
    from neuroadda.data.volume import open_volume

    path, _ = _crop_cards(tmp_path, monkeypatch, crop="[[0, 6], [0, 40], [20, 41]]")
    with pytest.raises(InputError, match="crop .* does not lie inside the stored shape"):
        open_volume("half")
    path.unlink()
    with pytest.raises(InputError, match="not bundled.*NEUROADDA_DATA") as e:
        open_volume("whole")
    assert "\n" not in str(e.value)


MOUSE = Path(__file__).resolve().parents[3] / "shared" / "data" / "em"


@pytest.mark.integration
@pytest.mark.skipif(not (MOUSE / "mouse_s1cortex_atumsem_kasthuri2015_snemi3d_train").is_dir(),
                    reason="the shared mouse cortex crop is not on this machine")
def test_mouse_halves_tile_the_shared_crop(monkeypatch):
    from neuroadda.data.volume import open_volume

    monkeypatch.setenv("NEUROADDA_DATA", str(MOUSE))
    whole, a, b = (open_volume(n, require_labels=True) for n in ("mouse-ac4", "mouse-ac4-a", "mouse-ac4-b"))
    assert whole.shape == (100, 512, 512) and a.shape == b.shape == (100, 512, 256)
    box = (slice(40, 44), slice(0, 512), slice(0, 256))
    full = whole.labels.read((slice(40, 44), slice(0, 512), slice(0, 512)))
    assert np.array_equal(a.labels.read(box), full[..., :256]) and np.array_equal(b.labels.read(box), full[..., 256:])
    assert b.voxel_size == (30.0, 6.0, 6.0) and b.labels_kind == "3d_instance" and b.label_zero == "boundary"
