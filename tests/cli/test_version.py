"""``neuroadda --version`` prints the package version and exits 0."""

from __future__ import annotations

import subprocess
import sys

from neuroadda import __version__
from neuroadda.cli.main import main


def test_version_flag(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"neuroadda {__version__}"


def test_version_from_the_console_entry_point():
    r = subprocess.run([sys.executable, "-m", "neuroadda.cli.main", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"neuroadda {__version__}"
    assert __version__.count(".") >= 2
