"""``sertk.download`` and ``sertk data download``, against a local HTTP server on 127.0.0.1 that honours Range.

The corpora are miniature trees in the real release layouts (:mod:`public_corpora_trees`), zipped as the real
archives are: EmoDB's ``download.zip`` holds ``wav/``, ``lablaut/`` … at its top level, RAVDESS's
``Audio_Speech_Actors_01-24.zip`` holds ``Actor_01/`` … at its top level.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from public_corpora_trees import make_emodb_tree, make_ravdess_tree
from range_server import serve

from sertk.cli.main import cli
from sertk.download import MARKER, DownloadError, extract_zip, fetch
from sertk.errors import DatasetError
from sertk_plugins.datasets import emodb as emodb_mod
from sertk_plugins.datasets import ravdess as ravdess_mod
from sertk_plugins.datasets.emodb import EmoDB
from sertk_plugins.datasets.ravdess import RAVDESS


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "served") as srv:
        yield srv


def _zip_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Zip the contents of ``folder`` with names relative to it (directory entries included)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return archive


@pytest.fixture
def emodb_zip(server, tmp_path, monkeypatch):
    corpus = make_emodb_tree(tmp_path / "src", name="emodb-src")
    _zip_folder(corpus, server.root / "download.zip", {"erkennung.txt": b"x\n", "erklaerung.txt": b"y\n"})
    monkeypatch.setattr(emodb_mod, "DOWNLOAD_URL", server.url("download.zip"))
    return server.root / "download.zip"


@pytest.fixture
def ravdess_zip(server, tmp_path, monkeypatch):
    corpus = make_ravdess_tree(tmp_path / "src", name="ravdess-src", flat=True)
    archive = _zip_folder(corpus, server.root / "Audio_Speech_Actors_01-24.zip")
    data = archive.read_bytes()
    monkeypatch.setattr(ravdess_mod, "DOWNLOAD_URL", server.url(archive.name + "?download=1"))
    monkeypatch.setattr(ravdess_mod, "DOWNLOAD_MD5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(ravdess_mod, "DOWNLOAD_SIZE", len(data))
    return archive


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


# -- fetch ------------------------------------------------------------------------------------------------------
def test_fetch_resumes_from_a_part_file_and_checks_digests(server, tmp_path):
    data = bytes(range(256)) * 1000
    (server.root / "blob.bin").write_bytes(data)
    dest = tmp_path / "out" / "blob.bin"
    dest.parent.mkdir()
    dest.with_name("blob.bin.part").write_bytes(data[:100_000])
    fetch(server.url("blob.bin"), dest, md5=hashlib.md5(data).hexdigest(), size=len(data),
          sha256=hashlib.sha256(data).hexdigest(), timeout=10)
    assert dest.read_bytes() == data and not dest.with_name("blob.bin.part").exists()
    assert server.requests == [("/blob.bin", "bytes=100000-")]
    fetch(server.url("blob.bin"), dest, md5=hashlib.md5(data).hexdigest(), timeout=10)  # complete: no request
    assert len(server.requests) == 1


def test_fetch_errors_name_the_url(server, tmp_path):
    (server.root / "blob.bin").write_bytes(b"abc" * 100)
    with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404"):
        fetch(server.url("missing.bin"), tmp_path / "a", timeout=10)
    with pytest.raises(DownloadError, match="expected 5"):
        fetch(server.url("blob.bin"), tmp_path / "b", size=5, timeout=10)
    with pytest.raises(DownloadError, match="md5 .* does not match"):
        fetch(server.url("blob.bin"), tmp_path / "c", md5="0" * 32, timeout=10)
    assert _leftovers(tmp_path) == ["served"]


def test_unsafe_zip_members_are_refused(tmp_path):
    for name in ("../evil.txt", "/etc/evil.txt", "Actor_01/../../evil.txt", "C:/evil.txt"):
        archive = tmp_path / "evil.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("Actor_01/ok.txt", b"fine")
            zf.writestr(name, b"evil")
        with pytest.raises(DownloadError, match="unsafe member"):
            extract_zip(archive, tmp_path / "out" / "corpus")
        assert _leftovers(tmp_path / "out") == []
    assert not (tmp_path / "evil.txt").exists()


# -- datasets ---------------------------------------------------------------------------------------------------
def test_emodb_download_extracts_checks_and_is_idempotent(emodb_zip, server, tmp_path):
    dest = tmp_path / "corpora"
    root = EmoDB.download(dest)
    assert root == dest / "emodb" and (root / MARKER).is_file()
    assert sorted(p.name for p in root.iterdir()) == [MARKER, "erkennung.txt", "erklaerung.txt", "lablaut", "wav"]
    assert len(list(EmoDB(root).utterances())) == 80
    assert _leftovers(dest) == ["emodb"]  # the zip and its record are gone, no temporary folder is left
    n = len(server.requests)
    assert EmoDB.download(dest) == root and len(server.requests) == n  # complete: nothing fetched


def test_ravdess_download_resumes_and_verifies(ravdess_zip, server, tmp_path):
    server.mode = "cut"
    dest = tmp_path / "corpora"
    with pytest.raises(DownloadError, match="again to resume"):
        RAVDESS.download(dest)
    assert _leftovers(dest) == ["Audio_Speech_Actors_01-24.zip.part"]
    got = (dest / "Audio_Speech_Actors_01-24.zip.part").stat().st_size
    assert 0 < got < ravdess_zip.stat().st_size
    root = RAVDESS.download(dest)
    assert [r for _, r in server.requests] == [None, f"bytes={got}-"]
    assert root == dest / "Audio_Speech_Actors_01-24"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "Actor_01", "Actor_02", "Actor_03", "Actor_04"]
    assert len(list(RAVDESS(root, full_release=False).utterances())) == 32
    assert _leftovers(dest) == ["Audio_Speech_Actors_01-24"]


@pytest.mark.parametrize("field,value", [("DOWNLOAD_MD5", "0" * 32), ("DOWNLOAD_SIZE", 12345)])
def test_ravdess_download_with_wrong_digest_or_size_leaves_nothing(ravdess_zip, tmp_path, monkeypatch, field,
                                                                     value):
    monkeypatch.setattr(ravdess_mod, field, value)
    dest = tmp_path / "corpora"
    with pytest.raises(DownloadError, match="md5|expected 12345"):
        RAVDESS.download(dest)
    assert _leftovers(dest) == []


def test_a_zip_with_an_evil_member_leaves_no_corpus(server, tmp_path, monkeypatch):
    corpus = make_ravdess_tree(tmp_path / "src", name="ravdess-src", flat=True, actors=(1,))
    archive = _zip_folder(corpus, server.root / "evil.zip", {"../evil.txt": b"evil"})
    data = archive.read_bytes()
    monkeypatch.setattr(ravdess_mod, "DOWNLOAD_URL", server.url("evil.zip"))
    monkeypatch.setattr(ravdess_mod, "DOWNLOAD_MD5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(ravdess_mod, "DOWNLOAD_SIZE", len(data))
    dest = tmp_path / "corpora"
    with pytest.raises(DownloadError, match="unsafe member '../evil.txt'"):
        RAVDESS.download(dest)
    assert not (tmp_path / "evil.txt").exists()
    assert "Audio_Speech_Actors_01-24" not in _leftovers(dest)
    assert not [p for p in _leftovers(dest) if p.startswith(".")]


def test_a_wrong_layout_is_not_renamed_into_place(server, tmp_path, monkeypatch):
    _zip_folder(make_ravdess_tree(tmp_path / "src", flat=True, actors=(1,)), server.root / "download.zip")
    monkeypatch.setattr(emodb_mod, "DOWNLOAD_URL", server.url("download.zip"))
    dest = tmp_path / "corpora"
    with pytest.raises(DatasetError, match="not EmoDB"):
        EmoDB.download(dest)
    assert _leftovers(dest) == ["download.zip", "download.zip.sha256.json"]  # kept: no second download


# -- CLI --------------------------------------------------------------------------------------------------------
def test_cli_download_happy_path(emodb_zip, tmp_path, builtin_host):
    dest = tmp_path / "corpora"
    r = CliRunner().invoke(cli, ["data", "download", "emodb", str(dest)])
    assert r.exit_code == 0, r.output
    assert f"sertk run --dataset emodb --data-root {dest / 'emodb'}" in r.output
    again = CliRunner().invoke(cli, ["data", "download", "emodb", str(dest)])
    assert again.exit_code == 0 and "already complete" in again.output


@pytest.mark.parametrize("name,expected", [("cremad", "git lfs clone https://github.com/CheyneyComputerScience"),
                                           ("iemocap", "sertk cannot download dataset 'iemocap'")])
def test_cli_download_of_a_dataset_without_download(name, expected, tmp_path, builtin_host):
    r = CliRunner().invoke(cli, ["data", "download", name, str(tmp_path / "x")])
    assert r.exit_code == 1
    assert expected in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_cli_download_help(builtin_host):
    r = CliRunner().invoke(cli, ["data", "download", "--help"])
    assert r.exit_code == 0 and "NAME DIR" in r.output
