"""Downloading files and corpora: resumable HTTP fetches, checked digests, safe zip extraction.

:func:`fetch` gets one URL into a file: the bytes go to ``<file>.part`` (kept when the transfer stops, so the next
call resumes with an HTTP Range request; a server that ignores ranges makes it start over), a progress bar shows
the MiB (:mod:`sertk.progress`), the size and the sha256 (and md5, when one is expected) are checked, and only then
is the part file renamed into place. ``<file>.sha256.json`` records url, size, mtime and digests, so a complete
file is never fetched, nor hashed, twice.

:func:`download_corpus` is what a dataset's ``download(dest)`` classmethod calls: fetch the release archive into
``dest``, verify it, extract it into a temporary folder inside ``dest`` (refusing members with absolute paths or
``..``), let the dataset check the result, and rename the folder into place with a marker file: a half-extracted
corpus never looks complete, and a second run on a complete folder only says so.

Every failure is a :class:`DownloadError` (a :class:`~sertk.errors.SertkError`: one line from the CLI) naming the
URL or file and what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from sertk.errors import SertkError

logger = logging.getLogger(__name__)

__all__ = ["MARKER", "DownloadError", "download_corpus", "extract_zip", "fetch", "record_path", "safe_members",
           "write_record"]

#: the file :func:`download_corpus` writes into a corpus folder once it is complete
MARKER = ".sertk-download.json"


class DownloadError(SertkError):
    """A download or an extraction failed (network, size, digest, unsafe or broken archive)."""


# -- the digest record --------------------------------------------------------------------------------------
def record_path(path: str | os.PathLike) -> Path:
    """``<file>.sha256.json``, where :func:`fetch` records url, size, mtime and digests of a downloaded file."""
    path = Path(path)
    return path.with_name(path.name + ".sha256.json")


def write_record(path: str | os.PathLike, digest: str, st: os.stat_result | None = None, **extra: str) -> None:
    """Write ``<file>.sha256.json`` (file name, size, mtime_ns, sha256 and ``extra``); a read-only folder is no
    error (the digest is then computed again next time)."""
    from sertk.atomic import atomic_write_text

    path = Path(path)
    st = st or path.stat()
    record = {"file": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest, **extra}
    try:
        atomic_write_text(record_path(path), json.dumps(record) + "\n")
    except OSError as exc:
        logger.debug("cannot record the digest of %s: %s", path, exc)


def _read_record(path: Path) -> dict:
    try:
        rec = json.loads(record_path(path).read_text())
        return rec if isinstance(rec, dict) else {}
    except (OSError, ValueError):
        return {}


def _hash_into(hashers: list, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            for h in hashers:
                h.update(block)


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    _hash_into([h], Path(path))
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file, cached in ``<file>.sha256.json`` (keyed on size and mtime) so it is computed once; a file
    :func:`fetch` downloaded has its record already."""
    path = Path(path)
    st = path.stat()
    record = _read_record(path)
    if record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns and "sha256" in record:
        return str(record["sha256"])
    logger.info("computing the sha256 of %s (%.0f MB); cached for later runs", path, st.st_size / 1e6)
    digest = sha256_of(path)
    write_record(path, digest, st)
    return digest


# -- one file -------------------------------------------------------------------------------------------------
def _content_range_total(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial download; returns ``dest``.

    ``sha256``, ``md5`` and ``size``, when given, are checked; a file that fails a check is removed (its part
    file too) and :class:`DownloadError` says so. A complete ``dest`` whose record (``<dest>.sha256.json``) names
    the same url and size, and the expected digests, is not fetched again.

    Raises
    ------
    DownloadError
        HTTP or network error, an interrupted transfer (run again to resume), a size or digest mismatch.
    """
    import http.client
    import urllib.error
    import urllib.request

    from sertk import progress

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        rec = _read_record(dest)
        if (rec.get("url") == url and rec.get("size") == dest.stat().st_size
                and (size is None or rec.get("size") == size)
                and (sha256 is None or rec.get("sha256") == sha256.lower())
                and (md5 is None or rec.get("md5") == md5.lower())):
            logger.info("%s is already complete (%d bytes)", dest, rec["size"])
            return dest

    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "sertk", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        total = _content_range_total(exc.headers.get("Content-Range")) if exc.code == 416 else None
        if exc.code == 416 and total == have:  # the part file is already whole
            response = None
        elif exc.code == 416:
            part.unlink(missing_ok=True)
            return fetch(url, dest, sha256=sha256, md5=md5, size=size, timeout=timeout, chunk_size=chunk_size)
        else:
            raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; check the address, or "
                                "try again later") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot download {url}: {getattr(exc, 'reason', exc)}; check the network connection "
                            "and run the same command again") from None

    hashers = [hashlib.sha256()] + ([hashlib.md5(usedforsecurity=False)] if md5 is not None else [])
    if response is not None:
        with response:
            if have and response.status == 206:
                start = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
                if not start or int(start.group(1)) != have:
                    raise DownloadError(f"{url}: the server answered the range request with a wrong range; "
                                        f"delete {part} and run again")
                total = _content_range_total(response.headers.get("Content-Range"))
                mode = "ab"
                logger.info("resuming %s at %d bytes", dest.name, have)
            else:
                if have:
                    logger.info("the server ignores ranges: downloading %s from the start", dest.name)
                have, mode = 0, "wb"
                length = response.headers.get("Content-Length")
                total = int(length) if length is not None else None
            if size is not None and total is not None and total != size:
                part.unlink(missing_ok=True)
                raise DownloadError(f"{url} has {total} bytes, expected {size}: the file on the server changed; "
                                    "nothing was kept")
            if mode == "ab":
                _hash_into(hashers, part)
            bar = progress.bar(total=round(total / 2**20, 1) if total else None, desc=dest.name, unit="MiB")
            bar.update(round(have / 2**20, 1))
            try:
                with open(part, mode) as fh:
                    while True:
                        block = response.read(chunk_size)
                        if not block:
                            break
                        fh.write(block)
                        for h in hashers:
                            h.update(block)
                        have += len(block)
                        bar.update(len(block) / 2**20)
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"download of {url} stopped at {have} of {total or '?'} bytes ({type(exc).__name__}); "
                    f"run the same command again to resume"
                ) from None
            finally:
                bar.close()
    else:
        total = have
        _hash_into(hashers, part)
    if total is not None and have != total:
        raise DownloadError(
            f"download of {url} stopped at {have} of {total} bytes; run the same command again to resume"
        )
    if size is not None and have != size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: got {have} bytes, expected {size}; the file was removed")
    digest = hashers[0].hexdigest()
    if sha256 is not None and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: sha256 {digest} does not match the expected {sha256}; the file was removed")
    extra = {"url": url}
    if md5 is not None:
        got = hashers[1].hexdigest()
        if got != md5.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: md5 {got} does not match the expected {md5}; the file was removed")
        extra["md5"] = got
    os.replace(part, dest)
    write_record(dest, digest, None, **extra)
    logger.info("downloaded %s (%d bytes, sha256 %s)", dest, have, digest)
    return dest


# -- archives -------------------------------------------------------------------------------------------------
def safe_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The members of ``zf`` to extract (macOS ``__MACOSX/`` debris left out), after checking every name.

    Raises
    ------
    DownloadError
        A member has an absolute path, a drive letter, a ``..`` component or a backslash, or is a symbolic link.
    """
    members = []
    for info in zf.infolist():
        name = info.filename
        parts = PurePosixPath(name).parts
        if (name.startswith(("/", "\\")) or "\\" in name or re.match(r"^[A-Za-z]:", name) or ".." in parts
                or stat.S_ISLNK(info.external_attr >> 16)):
            raise DownloadError(f"{zf.filename}: refusing the unsafe member {name!r} (absolute path, '..' or link); "
                                "the archive is not the expected release, nothing was extracted")
        if parts and parts[0] == "__MACOSX":
            continue
        members.append(info)
    return members


def extract_zip(archive: str | os.PathLike, target: str | os.PathLike,
                check: Callable[[Path], object] | None = None) -> Path:
    """Extract ``archive`` to the folder ``target`` (which must not exist) all at once.

    Members are checked with :func:`safe_members` first; the files go to a temporary folder next to ``target``,
    ``check(folder)`` (when given) may raise on a wrong layout, and only then is the folder renamed to
    ``target``. On any failure the temporary folder is removed.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise DownloadError(f"{target} already exists; remove it to extract {archive.name} again")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extracting-", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = safe_members(zf)
                from sertk import progress

                for info in progress.progress(members, total=len(members), desc=f"extract {archive.name}",
                                              unit="file"):
                    zf.extract(info, tmp)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise DownloadError(f"{archive} is not a readable zip file ({exc}); delete it and download again") \
                from None
        if check is not None:
            check(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# -- a corpus -------------------------------------------------------------------------------------------------
def download_corpus(
    corpus: str,
    url: str,
    dest: str | os.PathLike,
    *,
    archive: str,
    folder: str,
    check: Callable[[Path], str],
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    keep_archive: bool = False,
) -> Path:
    """Download a corpus's release zip into ``dest`` and extract it to ``dest/folder``; returns that folder.

    ``check(folder)`` gets the extracted (still temporary) folder and raises when it is not the corpus (it may
    construct the dataset on it); it returns a short description (``"535 utterances"``) that is logged and kept
    in the marker file. ``dest/folder`` appears only complete and checked, with a :data:`MARKER` file; when it
    already exists with its marker nothing is done. The archive (``dest/archive``) is removed after a
    successful extraction unless ``keep_archive``; an interrupted download resumes on the next call.

    Raises
    ------
    DownloadError
        Download failures (see :func:`fetch`), an unsafe or broken zip, or ``dest/folder`` already there without
        the marker (a copy sertk did not make: it is left alone).
    """
    dest = Path(dest).expanduser()
    target = dest / folder
    marker = target / MARKER
    if marker.is_file():
        logger.info("%s is already complete in %s: nothing to do", corpus, target)
        return target
    if target.exists():
        raise DownloadError(f"{target} exists but was not made by `sertk data download` (no {MARKER} in it): "
                            f"use it with --data-root as it is, or move it away to download {corpus} again")
    if dest.exists() and not dest.is_dir():
        raise DownloadError(f"{dest} is not a folder; pass the folder to download {corpus} into")
    zip_path = dest / archive
    logger.info("downloading %s from %s", corpus, url)
    fetch(url, zip_path, sha256=sha256, md5=md5, size=size)
    described: list[str] = []

    def _check(tmp: Path) -> None:
        described.append(check(tmp))
        digest = _read_record(zip_path).get("sha256", "")
        (tmp / MARKER).write_text(json.dumps({"corpus": corpus, "url": url, "archive": archive,
                                              "sha256": digest, "contents": described[0]}) + "\n")

    extract_zip(zip_path, target, check=_check)
    if not keep_archive:
        zip_path.unlink(missing_ok=True)
        record_path(zip_path).unlink(missing_ok=True)
    logger.info("%s is ready in %s (%s)", corpus, target, described[0])
    return target
