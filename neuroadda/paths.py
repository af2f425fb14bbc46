"""Where the tool's own files are, found lazily (nnU-Net's ``paths.py`` idea) through ``importlib.resources``.

The dataset cards (``datasets/*.yaml``, ``datasets/phylogeny.yaml``), the configs (``configs/*.yaml``), the
SLURM templates (``slurm/``) and the small demo backbones (``datasets/backbones/*.pt``) live in the repository
beside the package. A wheel ships them inside it, as ``neuroadda/_data/{datasets,configs,slurm}`` (mapped at
build time by ``setup.py``; nothing is copied or linked in the checkout). So:

* installed from a wheel or ``pip install .``: they are read from ``neuroadda/_data/``;
* a source checkout (``pip install -e .`` or ``PYTHONPATH``): from the checkout's own folders.

The bundled EM crops (``datasets/data/**.h5``, ~50 MB) are not package data: a card's files are looked up in the
checkout's ``datasets/data/`` and then in :func:`data_home` (``$NEUROADDA_DATA``).
Environment overrides: ``$NEUROADDA_DATASETS`` (folder of cards), ``$NEUROADDA_DATA`` (data home).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from neuroadda.errors import ConfigError

SHIPPED = "_data"  # folder inside the installed package that holds the package data


def package_dir() -> Path:
    """The ``neuroadda`` package folder (``importlib.resources``; a plain folder, as pip installs it)."""
    return Path(str(files("neuroadda")))


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None when it runs from an installed wheel."""
    root = package_dir().parent
    return root if (root / "pyproject.toml").is_file() and (root / "configs").is_dir() else None


def resource_root() -> Path:
    """Folder holding ``datasets/``, ``configs/`` and ``slurm/``: the installed package's ``_data/``, else the
    checkout. An installed package without its data is an error naming what is missing."""
    shipped = package_dir() / SHIPPED
    if shipped.is_dir():
        return shipped
    root = checkout_root()
    if root is None:
        raise ConfigError(f"{shipped}: neuroadda's package data (configs, dataset cards, SLURM templates) is "
                          "missing; reinstall the package")
    return root


def configs_dir() -> Path:
    """The shipped configs (``configs/*.yaml``)."""
    return resource_root() / "configs"


def datasets_dir() -> Path:
    """The folder of dataset cards: ``$NEUROADDA_DATASETS``, else the shipped ``datasets/``."""
    env = os.environ.get("NEUROADDA_DATASETS")
    return Path(env) if env else resource_root() / "datasets"


def templates_dir() -> Path:
    """The SLURM script templates (``slurm/*.sbatch``)."""
    return resource_root() / "slurm"


def data_home() -> Path:
    """Where fetched datasets go and bundled crops may be put: ``$NEUROADDA_DATA`` or
    ``~/.cache/neuroadda/datasets``."""
    env = os.environ.get("NEUROADDA_DATA")
    return Path(env) if env else Path.home() / ".cache" / "neuroadda" / "datasets"


def shipped_file(path: str | Path) -> Path:
    """``path`` as given when it exists (or is absolute); else, for a relative path such as
    ``configs/adapt.yaml``, the shipped file of that name when there is one. So the configs named in the
    README and in ``configs/experiment.yaml`` work from any folder, also after a plain ``pip install``."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    try:
        shipped = resource_root() / p
    except ConfigError:  # no package data at all: report the path as given
        return p
    return shipped if shipped.exists() else p
