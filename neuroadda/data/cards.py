"""Dataset cards: one YAML file per dataset in ``datasets/``, validated by pydantic.

A card says what a dataset is (organism, tissue, modality, voxel size in nm as (z, y, x)), where its files
live (bundled in the repository, or downloaded from a public URL into the data home), which array holds the
raw image and which the labels, and how to cite it.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from neuroadda.errors import ConfigError, InputError, format_validation_error, read_yaml_mapping
from neuroadda.paths import data_home, datasets_dir  # noqa: F401  (re-exported: where cards and data live)
from neuroadda.vocab import LabelsKind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CardFile(_Strict):
    """One file of a dataset."""

    filename: str = Field(description="name relative to the dataset's folder")
    url: str | None = Field(None, description="public download URL")
    sha256: str | None = Field(None, description="hex SHA-256 of the file as stored/downloaded")
    size_bytes: int | None = None
    unpack: Literal["gzip", "zip", "tar"] | None = Field(
        None, description="archive format; the archive is unpacked next to it after verification")


class ArrayRef(_Strict):
    """Where an array lives: a file of the card and a key inside it (None for TIFF)."""

    file: str
    key: str | None = None


class DatasetCard(_Strict):
    """Everything the tool knows about one dataset."""

    name: str
    description: str
    organism: str
    species: str = Field(description="binomial name, as used in datasets/phylogeny.yaml")
    tissue: str
    modality: str
    voxel_size_nm: tuple[float, float, float] = Field(description="(z, y, x) in nm")
    shape: tuple[int, int, int] | None = Field(None, description="(z, y, x) voxels of raw and labels")
    files: list[CardFile]
    raw: ArrayRef
    labels: ArrayRef | None = None
    labels_kind: LabelsKind | None = None
    label_zero: Literal["boundary", "unlabelled"] = Field(
        "boundary", description="what label 0 means: a boundary (edges into it are cuts) or unknown (ignored)")
    license: str
    citation: str
    homepage: str | None = None
    local_dir: str | None = Field(None, description="folder under datasets/ holding bundled files")
    bundle: bool = Field(True, description="false: a local file that is never bundled (e.g. its licence is "
                                           "unstated); it is looked for in $NEUROADDA_DATA/<last part of local_dir>")
    crop: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = Field(
        None, description="[[z0, z1], [y0, y1], [x0, x1]]: the sub-volume of the stored arrays this card stands "
                          "for (stored voxels, end exclusive); several cards may share one file")
    notes: str | None = None
    card_path: str | None = Field(None, exclude=True, description="set when loaded")

    def directory(self) -> Path:
        """Folder that holds (or will hold, after ``datasets fetch``) this dataset's files. A bundled crop is
        looked for in the checkout (``datasets/<local_dir>``), then in ``$NEUROADDA_DATA/<last part of
        local_dir>``; where neither has all its files, the first of the two is returned."""
        if self.local_dir is not None:
            places = self.bundled_places()
            return next((d for d in places if all((d / f.filename).is_file() for f in self.files)), places[0])
        return data_home() / self.name

    def bundled_places(self) -> list[Path]:
        """Where a bundled crop's files may be: the card folder's ``local_dir``, then the data home."""
        return [datasets_dir() / self.local_dir, data_home() / Path(self.local_dir).name]

    def file_path(self, filename: str) -> Path:
        return self.directory() / filename

    @property
    def bundled(self) -> bool:
        return self.local_dir is not None and self.bundle

    @property
    def local_only(self) -> bool:
        """A file of this machine's that is never bundled nor downloaded (found through ``$NEUROADDA_DATA``)."""
        return self.local_dir is not None and not self.bundle

    @property
    def downloadable(self) -> bool:
        return any(f.url for f in self.files)


def missing_files_hint(card: DatasetCard) -> str:
    """How to get a card's missing files: fetch it, or (a bundled crop) where to put the checkout's copy."""
    if card.downloadable and not card.bundled:
        return f"run 'neuroadda datasets fetch {card.name}'"
    if card.local_only:
        return (f"this dataset is not bundled (see its card's licence): put the folder {Path(card.local_dir).name} "
                f"with its files under {data_home()} or point $NEUROADDA_DATA at the folder that holds it")
    if card.bundled:
        return (f"bundled crops are not part of the installed package: copy the folder "
                f"datasets/{card.local_dir} of a source checkout into {data_home()} (or point $NEUROADDA_DATA at "
                "a checkout's datasets/data)")
    return "see the card's notes"


def load_card(path: str | Path) -> DatasetCard:
    path = Path(path)
    data = read_yaml_mapping(path, "dataset card")
    try:
        return DatasetCard(**data, card_path=str(path))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(path))) from None


@lru_cache(maxsize=4)
def _all_cards(folder: str) -> dict[str, DatasetCard]:
    cards: dict[str, DatasetCard] = {}
    for p in sorted(Path(folder).glob("*.yaml")):
        if p.name == "phylogeny.yaml":
            continue
        card = load_card(p)
        if card.name in cards:
            raise ConfigError(f"{p}: dataset name '{card.name}' already used by {cards[card.name].card_path}")
        cards[card.name] = card
    return cards


def all_cards() -> dict[str, DatasetCard]:
    """All cards in :func:`datasets_dir`, by name."""
    return _all_cards(str(datasets_dir()))


def card_for_file(path: str | Path, key: str | None) -> DatasetCard | None:
    """The card whose raw array is ``path`` (and ``key``, default the card's raw key), if any: a bundled or
    fetched file given by path is read with its card's metadata (voxel size, labels kind, label 0). Cards that
    stand for a crop of a file never match it: the path is the whole file."""
    try:
        target = Path(path).resolve()
    except OSError:
        return None
    for card in all_cards().values():
        p = card.file_path(card.raw.file)
        if card.crop is not None or key not in (None, card.raw.key) or not p.exists():
            continue
        if p.resolve() == target:
            return card
    return None


def get_card(name: str) -> DatasetCard:
    """The card called ``name``; an unknown name is an :class:`InputError` suggesting close names."""
    cards = all_cards()
    if name in cards:
        return cards[name]
    close = difflib.get_close_matches(name, list(cards), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see 'neuroadda datasets list'"
    raise InputError(f"unknown dataset '{name}'{hint}")


def require_files(card: DatasetCard) -> None:
    """An :class:`InputError` naming the first missing file of ``card`` and how to get it; None when all are here."""
    for f in card.files:
        path = card.file_path(f.filename)
        if not path.is_file():
            raise InputError(f"dataset '{card.name}': file {path} is missing ({missing_files_hint(card)})")
