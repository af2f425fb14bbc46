"""fetch(): downloads from a local HTTP server, verified by SHA-256, into the data home."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from neuroadda.data.cards import ArrayRef, CardFile, DatasetCard
from neuroadda.data.fetch import fetch, sha256_file, verify_files
from neuroadda.errors import InputError

PAYLOAD = bytes(range(256)) * 4099 + b"tail"  # ~1 MiB + a bit: more than one read chunk


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path, request):
    """Serve tmp_path/'srv' on 127.0.0.1:<free port>; `.requests` lists the paths asked for."""
    root = tmp_path / "srv"
    root.mkdir()
    requests: list[str] = []

    class Recording(_Handler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Recording, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def stop():
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)

    request.addfinalizer(stop)
    httpd.root, httpd.requests = root, requests
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    return httpd


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("NEUROADDA_DATA", str(h))
    return h


def make_card(name="toy", files=(), raw_file="vol.h5", **kw) -> DatasetCard:
    return DatasetCard(name=name, description="toy", organism="fly", species="Drosophila melanogaster",
                       tissue="medulla", modality="FIB-SEM", voxel_size_nm=(10, 10, 10), files=list(files),
                       raw=ArrayRef(file=raw_file, key="raw"), license="CC0", citation="none", **kw)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_good_download_is_verified_and_lands_in_data_home(server, home):
    (server.root / "vol.h5").write_bytes(PAYLOAD)
    card = make_card(files=[CardFile(filename="vol.h5", url=f"{server.url}/vol.h5", sha256=sha(PAYLOAD),
                                      size_bytes=len(PAYLOAD))])
    out = fetch(card, progress=False)
    assert out == home / "toy" == card.directory()
    assert (out / "vol.h5").read_bytes() == PAYLOAD
    assert sha256_file(out / "vol.h5") == sha(PAYLOAD)
    assert leftovers(out) == []
    assert verify_files(card) == []


def test_second_fetch_skips_and_force_downloads_again(server, home):
    (server.root / "vol.h5").write_bytes(PAYLOAD)
    card = make_card(files=[CardFile(filename="vol.h5", url=f"{server.url}/vol.h5", sha256=sha(PAYLOAD))])
    fetch(card, progress=False)
    assert server.requests == ["/vol.h5"]
    fetch(card, progress=False)
    assert server.requests == ["/vol.h5"], "a present, verified file must not be downloaded again"
    fetch(card, progress=False, force=True)
    assert server.requests == ["/vol.h5", "/vol.h5"]


def test_corrupt_local_file_is_replaced(server, home):
    (server.root / "vol.h5").write_bytes(PAYLOAD)
    card = make_card(files=[CardFile(filename="vol.h5", url=f"{server.url}/vol.h5", sha256=sha(PAYLOAD))])
    (home / "toy").mkdir(parents=True)
    (home / "toy" / "vol.h5").write_bytes(b"truncated")
    assert "checksum mismatch" in verify_files(card)[0]
    fetch(card, progress=False)
    assert (home / "toy" / "vol.h5").read_bytes() == PAYLOAD
    assert verify_files(card) == []


def test_wrong_checksum_raises_and_leaves_no_file(server, home):
    (server.root / "vol.h5").write_bytes(PAYLOAD)
    wrong = "0" * 64
    card = make_card(files=[CardFile(filename="vol.h5", url=f"{server.url}/vol.h5", sha256=wrong)])
    with pytest.raises(InputError) as e:
        fetch(card, progress=False)
    msg = str(e.value)
    assert "vol.h5" in msg and wrong in msg and sha(PAYLOAD) in msg and "\n" not in msg
    assert list((home / "toy").iterdir()) == [], "neither the file nor its temporary copy may remain"


def test_wrong_size_raises_and_leaves_no_file(server, home):
    (server.root / "vol.h5").write_bytes(PAYLOAD)
    card = make_card(files=[CardFile(filename="vol.h5", url=f"{server.url}/vol.h5", size_bytes=7)])
    with pytest.raises(InputError, match="size mismatch"):
        fetch(card, progress=False)
    assert list((home / "toy").iterdir()) == []


def test_404_raises_input_error_naming_the_url(server, home):
    url = f"{server.url}/missing.h5"
    card = make_card(files=[CardFile(filename="vol.h5", url=url, sha256="a" * 64)])
    with pytest.raises(InputError) as e:
        fetch(card, progress=False)
    assert url in str(e.value) and "404" in str(e.value)
    assert list((home / "toy").iterdir()) == []


def test_unreachable_host_raises_input_error_naming_the_url(home):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/vol.h5"
    card = make_card(files=[CardFile(filename="vol.h5", url=url, sha256="a" * 64)])
    with pytest.raises(InputError, match=url):
        fetch(card, progress=False)


def test_gzip_is_unpacked_next_to_the_archive(server, home):
    gz = gzip.compress(PAYLOAD)
    (server.root / "vol.h5.gz").write_bytes(gz)
    card = make_card(files=[CardFile(filename="vol.h5.gz", url=f"{server.url}/vol.h5.gz", sha256=sha(gz),
                                      unpack="gzip")])
    out = fetch(card, progress=False)
    assert (out / "vol.h5").read_bytes() == PAYLOAD
    assert (out / "vol.h5.gz").read_bytes() == gz  # kept, so a second fetch can verify and skip
    assert leftovers(out) == []
    (out / "vol.h5").unlink()  # unpacked file lost: re-unpacked without a new download
    fetch(card, progress=False)
    assert (out / "vol.h5").read_bytes() == PAYLOAD and server.requests == ["/vol.h5.gz"]
    assert verify_files(card) == []


def test_zip_and_tar_are_unpacked(server, home):
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("cube/vol.h5", PAYLOAD)
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz") as t:
        info = tarfile.TarInfo("pinky/a.h5")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    (server.root / "c.zip").write_bytes(zbuf.getvalue())
    (server.root / "p.tar.gz").write_bytes(tbuf.getvalue())
    card = make_card(raw_file="cube/vol.h5", files=[
        CardFile(filename="c.zip", url=f"{server.url}/c.zip", sha256=sha(zbuf.getvalue()), unpack="zip"),
        CardFile(filename="p.tar.gz", url=f"{server.url}/p.tar.gz", sha256=sha(tbuf.getvalue()), unpack="tar")])
    out = fetch(card, progress=False)
    assert (out / "cube" / "vol.h5").read_bytes() == PAYLOAD
    assert (out / "pinky" / "a.h5").read_bytes() == b"hello"
    assert leftovers(out) == []
    assert verify_files(card) == []


def test_unsafe_archive_member_is_refused(server, home):
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("../evil.txt", b"x")
    (server.root / "e.zip").write_bytes(zbuf.getvalue())
    card = make_card(files=[CardFile(filename="e.zip", url=f"{server.url}/e.zip", sha256=sha(zbuf.getvalue()),
                                      unpack="zip")])
    with pytest.raises(InputError, match="unsafe"):
        fetch(card, progress=False)
    assert not (home / "evil.txt").exists()


def test_missing_checksum_downloads_with_a_warning_giving_the_sha(server, home):
    (server.root / "vol.h5").write_bytes(PAYLOAD)
    card = make_card(files=[CardFile(filename="vol.h5", url=f"{server.url}/vol.h5")])
    with pytest.warns(UserWarning, match=sha(PAYLOAD)):
        out = fetch(card, progress=False)
    assert (out / "vol.h5").read_bytes() == PAYLOAD


def test_card_without_url_raises_naming_the_dataset(home):
    cloud = make_card(name="cloudy", files=[CardFile(filename="crop.h5")])
    with pytest.raises(InputError, match="'cloudy'.*no file has a download URL"):
        fetch(cloud)
    bundled = make_card(name="inrepo", files=[CardFile(filename="vol.h5")], local_dir="data/x")
    with pytest.raises(InputError, match="'inrepo'.*bundled"):
        fetch(bundled)
    assert not home.exists(), "a refused fetch must not create folders"


def test_dest_overrides_the_folder(server, home, tmp_path):
    (server.root / "vol.h5").write_bytes(PAYLOAD)
    card = make_card(files=[CardFile(filename="vol.h5", url=f"{server.url}/vol.h5", sha256=sha(PAYLOAD))])
    out = fetch(card, dest=tmp_path / "elsewhere", progress=False)
    assert out == tmp_path / "elsewhere" and (out / "vol.h5").is_file()
    assert not (home / "toy").exists()
    assert verify_files(card, dest=out) == []


def test_verify_files_reports_missing_and_mismatch(tmp_path):
    card = make_card(files=[CardFile(filename="a.h5", sha256=sha(b"a")), CardFile(filename="b.h5", sha256=sha(b"b"))],
                     raw_file="a.h5")
    (tmp_path / "a.h5").write_bytes(b"not a")
    problems = verify_files(card, dest=tmp_path)
    assert len(problems) == 2
    assert "a.h5" in problems[0] and "checksum mismatch" in problems[0] and sha(b"a") in problems[0]
    assert "b.h5" in problems[1] and "missing" in problems[1]


def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(PAYLOAD * 3)
    assert sha256_file(p) == sha(PAYLOAD * 3)
