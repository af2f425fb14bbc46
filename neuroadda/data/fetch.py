"""Download the files of a dataset card into the data home, verified by SHA-256.

Every download is streamed to a temporary file in the destination folder and renamed into place only after
its checksum matches the card, so an interrupted or corrupted download never leaves a file under the real
name. Archives (``unpack: gzip | zip | tar``) are unpacked next to the archive, also via temporary names.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from neuroadda.data.cards import CardFile, DatasetCard, missing_files_hint
from neuroadda.errors import InputError

CHUNK = 1 << 20
TIMEOUT_S = 60


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(card: DatasetCard, *, dest: str | Path | None = None, force: bool = False, progress: bool = True) -> Path:
    """Download (and unpack) every file of ``card`` that has a URL; return the folder holding them.

    ``dest`` overrides the card's folder (``$NEUROADDA_DATA/<name>`` for downloadable cards). A file already
    present with the card's checksum is skipped unless ``force``. A file without a recorded checksum is
    downloaded with a warning that gives its SHA-256 (it cannot be verified).
    """
    todo = [f for f in card.files if f.url]
    if not todo:
        if card.bundled:
            why = f"its files are bundled in the repository under datasets/{card.local_dir}"
        else:
            why = "no file has a download URL (cloud-volume data: see the card's notes to export a crop)"
        raise InputError(f"dataset '{card.name}' cannot be fetched: {why}")
    folder = Path(dest) if dest is not None else card.directory()
    folder.mkdir(parents=True, exist_ok=True)
    for f in todo:
        target = folder / f.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        fresh = force or not _present_and_valid(target, f)
        if fresh:
            _download(f, target, progress=progress)
        if f.unpack and (fresh or not _unpacked_present(target, f.unpack)):
            _unpack(target, f.unpack)
    return folder


def verify_files(card: DatasetCard, *, dest: str | Path | None = None) -> list[str]:
    """Human-readable problems with the card's local files (missing, wrong size or checksum); [] = fine."""
    folder = Path(dest) if dest is not None else card.directory()
    how = missing_files_hint(card)
    problems = []
    for f in card.files:
        p = folder / f.filename
        if not p.is_file():
            problems.append(f"{card.name}: {p} is missing ({how})")
        elif f.size_bytes is not None and p.stat().st_size != f.size_bytes:
            problems.append(f"{card.name}: {p} has {p.stat().st_size} bytes, expected {f.size_bytes}")
        elif f.sha256 and (got := sha256_file(p)) != f.sha256.lower():
            problems.append(f"{card.name}: {p} checksum mismatch: expected {f.sha256.lower()}, got {got}")
    listed = {f.filename for f in card.files}
    for what, ref in (("raw", card.raw), ("labels", card.labels)):
        if ref is not None and ref.file not in listed and not (folder / ref.file).exists():
            problems.append(f"{card.name}: {what} file {folder / ref.file} is missing ({how})")
    return problems


def _present_and_valid(target: Path, f: CardFile) -> bool:
    if not target.is_file():
        return False
    if f.sha256 is None:
        return True  # nothing to compare with: keep what is there
    return sha256_file(target) == f.sha256.lower()


def _download(f: CardFile, target: Path, *, progress: bool) -> None:
    from neuroadda.report import atomic_path

    h, n = hashlib.sha256(), 0
    with atomic_path(target) as tmp:  # renamed onto target only when size and checksum are right
        with open(tmp, "wb") as out:
            try:
                req = urllib.request.Request(f.url, headers={"User-Agent": "neuroadda-fetch"})
                with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or f.size_bytes
                    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f.filename,
                              disable=not progress, leave=False) as bar:
                        for block in iter(lambda: resp.read(CHUNK), b""):
                            out.write(block)
                            h.update(block)
                            n += len(block)
                            bar.update(len(block))
            except urllib.error.HTTPError as e:
                raise InputError(f"download failed: {f.url}: HTTP {e.code} {e.reason}") from None
            except urllib.error.URLError as e:
                raise InputError(f"download failed: {f.url}: {e.reason}") from None
            except (TimeoutError, OSError, ValueError) as e:  # reset connection, timeout, bad URL
                raise InputError(f"download failed: {f.url}: {e.__class__.__name__}: {e}") from None
        got = h.hexdigest()
        if f.size_bytes is not None and n != f.size_bytes:
            raise InputError(f"{f.filename}: size mismatch for {f.url}: expected {f.size_bytes} bytes, got {n}")
        if f.sha256 is None:
            warnings.warn(f"{f.filename}: no checksum recorded in the card, cannot verify the download from "
                          f"{f.url}; its sha256 is {got}", stacklevel=3)
        elif got != f.sha256.lower():
            raise InputError(f"{f.filename}: checksum mismatch for {f.url}: expected {f.sha256.lower()}, got {got}")


def _gunzip_name(archive: Path) -> Path:
    return archive.with_suffix("") if archive.suffix == ".gz" else archive.with_name(archive.name + ".out")


def _members(archive: Path, kind: str) -> list[str]:
    if kind == "zip":
        with zipfile.ZipFile(archive) as z:
            return [n for n in z.namelist() if not n.endswith("/")]
    with tarfile.open(archive) as t:
        return [m.name for m in t.getmembers() if m.isfile()]


def _unpacked_present(archive: Path, kind: str) -> bool:
    if kind == "gzip":
        return _gunzip_name(archive).exists()
    try:
        return all((archive.parent / n).exists() for n in _members(archive, kind))
    except (OSError, zipfile.BadZipFile, tarfile.TarError):
        return False


def _unpack(archive: Path, kind: str) -> None:
    """Unpack next to ``archive``: into a temporary name/folder first, then rename into place."""
    folder = archive.parent
    try:
        if kind == "gzip":
            from neuroadda.report import atomic_path

            with atomic_path(_gunzip_name(archive)) as tmp, open(tmp, "wb") as dst, gzip.open(archive, "rb") as src:
                shutil.copyfileobj(src, dst, CHUNK)
            return
        tmpdir = Path(tempfile.mkdtemp(dir=folder, prefix=f".{archive.name}.", suffix=".unpack"))
        try:
            for name in _members(archive, kind):
                p = PurePosixPath(name)
                if p.is_absolute() or ".." in p.parts:
                    raise InputError(f"{archive}: refusing to unpack unsafe member path '{name}'")
            if kind == "zip":
                with zipfile.ZipFile(archive) as z:
                    z.extractall(tmpdir)
            else:
                with tarfile.open(archive) as t:
                    try:
                        t.extractall(tmpdir, filter="data")
                    except TypeError:  # Python < 3.11.4: no extraction filters (member paths checked above)
                        t.extractall(tmpdir)
            for item in tmpdir.iterdir():
                final = folder / item.name
                if final.is_dir() and not final.is_symlink():
                    shutil.rmtree(final)
                os.replace(item, final)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as e:
        raise InputError(f"{archive}: cannot unpack as {kind}: {e.__class__.__name__}: {e}") from None
