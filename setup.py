"""Package layout for setuptools (all metadata is in pyproject.toml).

The dataset cards, configs, SLURM templates and demo backbones stay where they are in the repository (engineers
add cards under datasets/ without touching the package) and are mapped into the wheel at build time as
``neuroadda/_data/{datasets,configs,slurm}``: no copies or links in the checkout. Which files go in is
``[tool.setuptools.package-data]`` in pyproject.toml. A ``find:`` in pyproject.toml cannot be combined with
these mapped folders, hence this file.
"""

from setuptools import find_packages, setup

DATA = {"neuroadda._data.datasets": "datasets", "neuroadda._data.datasets.backbones": "datasets/backbones",
        "neuroadda._data.datasets.data": "datasets/data", "neuroadda._data.configs": "configs",
        "neuroadda._data.slurm": "slurm"}

setup(packages=find_packages(include=["neuroadda", "neuroadda.*"]) + list(DATA), package_dir=DATA)
