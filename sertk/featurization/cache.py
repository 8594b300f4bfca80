"""The embedding cache: one SQLite file of float32 vectors keyed by (featurizer fingerprint, audio content).

Keys
----
- :func:`fingerprint_key` — SHA-256 of the featurizer's fingerprint as canonical JSON; the fingerprint holds
  everything that changes the output (name, preprocessing options, weights digest, dtype), so a changed
  featurizer never meets a stale embedding.
- :func:`audio_key` — SHA-256 of the audio file's bytes; renaming or touching a file keeps its embeddings,
  changing its content does not. :meth:`EmbeddingCache.audio_keys` remembers digests by
  (path, size, mtime, ctime, inode) so unchanged files are not re-read; a file modified within the last
  :data:`RACY_SECONDS` is always re-hashed, because a same-size rewrite in one clock tick keeps its mtime.

Storage
-------
``<dir>/embeddings.v<N>.sqlite`` in WAL mode (the schema version is in the file name and in
``PRAGMA user_version``, so a future layout never reads this one). Each :meth:`EmbeddingCache.put_many` is one
transaction: a process killed at any point leaves every finished batch and no part of an unfinished one.
Every row stores its dim, dtype and a CRC-32 of the vector bytes; a row that fails the check is a miss (logged
as a warning) and the next ``put_many`` overwrites it.

Damage
------
A database damaged as a whole (not SQLite, truncated, pages overwritten) is detected on open by
``PRAGMA quick_check`` — linear in the file's size, so only for files up to :data:`QUICK_CHECK_MAX_BYTES` and
once per process while the file is unchanged — and, past that size or whenever SQLite reports it later, by the
error SQLite raises: either way a :class:`~sertk.errors.DamagedCacheError` that says how to get out
(``sertk cache clear`` deletes the file even when SQLite cannot read it; the embeddings are recomputed). A cache
folder that is a file or is not writable is a :class:`~sertk.errors.CacheError` naming it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sertk.errors import CacheError, DamagedCacheError, FeaturizerError, SertkError

__all__ = [
    "SCHEMA_VERSION",
    "CacheInfo",
    "FingerprintEntry",
    "EmbeddingCache",
    "default_cache_dir",
    "fingerprint_key",
    "canonical_json",
    "audio_key",
    "database_path",
    "fits_dir",
    "fit_files",
    "remove_database",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
#: stored vectors are little-endian float32, whatever the machine
STORED_DTYPE = np.dtype("<f4")
STORED_DTYPE_NAME = "float32"
#: files modified more recently than this are re-hashed instead of trusting the digest memo
RACY_SECONDS = 2.0
_CHUNK = 500  # keys per SELECT (below SQLite's variable limit on every version)
#: the largest database checked with ``PRAGMA quick_check`` on open (about 0.1 s per 100 MB)
QUICK_CHECK_MAX_BYTES = 512 * 2**20
_VERIFIED: set[tuple] = set()  # databases that passed the check in this process, by (path, size, mtime) of files

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    fp_key      TEXT PRIMARY KEY,
    featurizer  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    fp_key    TEXT NOT NULL REFERENCES fingerprints(fp_key),
    audio_key TEXT NOT NULL,
    dim       INTEGER NOT NULL,
    dtype     TEXT NOT NULL,
    crc32     INTEGER NOT NULL,
    vector    BLOB NOT NULL,
    created   REAL NOT NULL,
    PRIMARY KEY (fp_key, audio_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audio_digests (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    digest   TEXT NOT NULL
);
"""


def default_cache_dir() -> Path:
    """``$SERTK_CACHE_DIR``, else ``$SERTK_HOME/cache``, else ``~/.cache/sertk/cache``."""
    explicit = os.environ.get("SERTK_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("SERTK_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "sertk"
    return base / "cache"


def fits_dir(directory: str | os.PathLike) -> Path:
    """The folder beside the embeddings where ``sertk run`` keeps its long ν-SVM fits (``NuSVC(checkpoint=)``: one
    ``nusvm-<fingerprint>.npz`` per training set and parameters), so that a stopped run resumes its fit too."""
    return Path(directory) / "fits"


def fit_files(directory: str | os.PathLike) -> list[Path]:
    """The fit checkpoints kept in :func:`fits_dir` (sertk's own files only; anything else there is left alone)."""
    folder = fits_dir(directory)
    return sorted(folder.glob("nusvm-*.npz")) if folder.is_dir() else []


def database_path(directory: str | os.PathLike) -> Path:
    """The SQLite file an :class:`EmbeddingCache` in ``directory`` uses."""
    return Path(directory) / f"embeddings.v{SCHEMA_VERSION}.sqlite"


def _side_files(path: Path) -> tuple[Path, ...]:
    return (path, Path(f"{path}-wal"), Path(f"{path}-shm"))


def remove_database(directory: str | os.PathLike) -> list[Path]:
    """Delete the cache database in ``directory`` and its WAL/SHM side files, even when SQLite cannot read them
    (the way out of a damaged cache); returns what was deleted."""
    removed = []
    for path in _side_files(database_path(directory)):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CacheError(f"cannot delete {path}: {exc.strerror or exc}") from None
        removed.append(path)
    return removed


def _way_out(directory: Path) -> str:
    where = "" if directory == default_cache_dir() else f" --cache-dir {directory}"
    return (f"delete it with `sertk cache clear{where}` (embeddings are recomputed on the next run), or use "
            f"another --cache-dir or --no-cache")


def _guarded(method):
    """Turn SQLite's errors in a cache method into sertk errors that name the file and the way out."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc

    return wrapper


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def canonical_json(fingerprint: Mapping[str, Any]) -> str:
    """The fingerprint as JSON with sorted keys and no whitespace (NaN and infinities refused)."""
    try:
        return json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), allow_nan=False,
                          default=_json_default)
    except (TypeError, ValueError) as exc:
        name = fingerprint.get("name", "?") if isinstance(fingerprint, Mapping) else "?"
        raise FeaturizerError(f"featurizer {name!r} has a fingerprint that is not plain JSON: {exc}") from exc


def fingerprint_key(fingerprint: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of :func:`canonical_json` of ``fingerprint``."""
    return hashlib.sha256(canonical_json(fingerprint).encode("utf-8")).hexdigest()


def audio_key(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of the file's bytes: the content, not its name or time stamps."""
    from sertk.download import sha256_of

    return sha256_of(path)


@dataclasses.dataclass(frozen=True)
class FingerprintEntry:
    """The cached embeddings of one featurizer configuration."""

    fp_key: str
    featurizer: str
    fingerprint: dict[str, Any]
    entries: int
    bytes: int  # vector bytes only
    created: float


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """What :meth:`EmbeddingCache.info` reports."""

    path: Path
    size_bytes: int  # the database file and its WAL/SHM side files
    fingerprints: tuple[FingerprintEntry, ...]

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.fingerprints)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "entries": self.entries,
            "fingerprints": [dataclasses.asdict(f) for f in self.fingerprints],
        }


class EmbeddingCache:
    """Embeddings keyed by (fingerprint key, audio key), in ``directory`` (default :func:`default_cache_dir`).

    Safe to share between processes (SQLite WAL; writers wait up to ``timeout`` seconds for each other).
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, directory: str | os.PathLike | None = None, *, timeout: float = 60.0) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = database_path(self.directory)
        self._check_folder()
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc, opening=True) from exc
        try:
            self._setup()
        except BaseException as exc:
            self._conn.close()
            if not isinstance(exc, sqlite3.DatabaseError):
                raise
            raise self._error(exc, opening=True) from exc

    def _check_folder(self) -> None:
        directory = self.directory
        instead = "use another --cache-dir, or --no-cache"
        if directory.exists() and not directory.is_dir():
            raise CacheError(f"the embedding cache folder {directory} is a file, not a folder; {instead}")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the embedding cache folder {directory}: {exc.strerror or exc}; "
                             f"{instead}") from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise CacheError(f"the embedding cache folder {directory} is not writable; fix its permissions, or "
                             f"{instead}")
        for path in _side_files(self.path):
            if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                raise CacheError(f"the embedding cache {path} is not readable and writable; fix its permissions, "
                                 f"or {instead}")

    def _damaged(self, detail: str, opening: bool) -> DamagedCacheError:
        what = (f"cannot open the embedding cache {self.path}: it is damaged" if opening
                else f"the embedding cache {self.path} is damaged")
        return DamagedCacheError(f"{what} ({detail}); {_way_out(self.directory)}", self.path, detail)

    def _error(self, exc: sqlite3.Error, opening: bool = False) -> SertkError:
        """The sertk error for an SQLite error: damage (with the way out), or another problem, named."""
        message = str(exc)
        if "readonly" in message or "read-only" in message:
            return CacheError(f"the embedding cache {self.path} cannot be written ({message}); fix the "
                              f"permissions of {self.directory}, or use another --cache-dir, or --no-cache")
        if type(exc) is sqlite3.DatabaseError or "malformed" in message or "not a database" in message:
            return self._damaged(message, opening)
        return CacheError(f"the embedding cache {self.path} cannot be used: {message}; {_way_out(self.directory)}")

    def _setup(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable against a killed process
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise SertkError(f"the embedding cache {self.path} has schema version {version}, this sertk "
                             f"writes version {SCHEMA_VERSION}; delete the file or use another --cache-dir")
        if version == 0:
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._verify()

    def _verify(self) -> None:
        """``PRAGMA quick_check`` (the fast path of SQLite's integrity check: no index cross-checks) on open, when
        the file is small enough and was not already checked unchanged in this process."""
        stamp = tuple((str(p), st.st_size, st.st_mtime_ns) for p in _side_files(self.path)
                      for st in [_stat(p)] if st is not None)
        size = sum(s[1] for s in stamp)
        if stamp in _VERIFIED:
            return
        if size > QUICK_CHECK_MAX_BYTES:
            logger.debug("embedding cache %s: %d bytes, not checked on open", self.path, size)
            return
        problems = [row[0] for row in self._conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            lines = [line.strip() for p in problems for line in str(p).splitlines()]
            lines = [line for line in lines if line and not line.startswith("***")]  # "*** in database main ***"
            detail = "; ".join(lines[:2]) + ("; …" if len(lines) > 2 else "")
            raise self._damaged(detail, opening=True)
        _VERIFIED.add(stamp)

    # -- plumbing --------------------------------------------------------------------------------------------
    def _transaction(self):
        return _Transaction(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r})"

    # -- audio keys ------------------------------------------------------------------------------------------
    @_guarded
    def audio_keys(self, paths: Sequence[str | os.PathLike]) -> list[str | OSError]:
        """:func:`audio_key` of each path, from the digest memo where the file is unchanged.

        A file that cannot be read gives its :class:`OSError` in place of a key.
        """
        now = time.time()
        resolved = [os.path.abspath(p) for p in paths]
        memo: dict[str, tuple] = {}
        unique = list(dict.fromkeys(resolved))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            rows = self._conn.execute(
                f"SELECT path, size, mtime_ns, ctime_ns, inode, digest FROM audio_digests "
                f"WHERE path IN ({','.join('?' * len(chunk))})", chunk)
            memo.update((row[0], row[1:]) for row in rows)
        keys: dict[str, str | OSError] = {}
        fresh: list[tuple] = []
        to_hash: list[tuple[str, os.stat_result, Any]] = []
        for path in unique:
            try:
                st = os.stat(path)
                stamp = _stamp(path, st)
                known = memo.get(path)
                if known is not None and tuple(known[:4]) == stamp:
                    keys[path] = known[4]
                    continue
            except OSError as exc:
                keys[path] = exc
                continue
            to_hash.append((path, st, stamp))
        for (path, st, stamp), digest in zip(to_hash, _hash_files([path for path, _, _ in to_hash])):
            keys[path] = digest
            if isinstance(digest, OSError):
                continue
            # remember the digest only for a file that has settled and did not change while it was read
            settled = now - max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > RACY_SECONDS
            if settled and stamp is not None and _stamp(path) == stamp:
                fresh.append((path, *stamp, digest))
        if fresh:
            with self._transaction():
                self._conn.executemany("INSERT OR REPLACE INTO audio_digests VALUES (?, ?, ?, ?, ?, ?)", fresh)
        return [keys[p] for p in resolved]

    # -- embeddings ------------------------------------------------------------------------------------------
    @_guarded
    def get_many(self, fp_key: str, audio_keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors (float32, shape ``(dim,)``) of those ``audio_keys`` that are cached and intact."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(audio_keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            rows = self._conn.execute(
                f"SELECT audio_key, dim, dtype, crc32, vector FROM embeddings "
                f"WHERE fp_key = ? AND audio_key IN ({','.join('?' * len(chunk))})", [fp_key, *chunk])
            for key, dim, dtype, crc, blob in rows:
                vector = _decode(dim, dtype, crc, blob)
                if vector is None:
                    logger.warning("embedding cache %s: corrupt entry for audio %s (fingerprint %s) is "
                                   "ignored and will be recomputed", self.path, key[:12], fp_key[:12])
                    continue
                found[key] = vector
        return found

    @_guarded
    def put_many(self, fp_key: str, fingerprint: Mapping[str, Any],
                 items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store ``(audio_key, vector)`` pairs under ``fp_key`` in one transaction (all or none).

        Raises
        ------
        ValueError
            If ``fp_key`` is not the key of ``fingerprint``, or a vector is not a finite 1-D array; nothing of
            this call is then stored.
        """
        if fingerprint_key(fingerprint) != fp_key:
            raise ValueError(f"fp_key {fp_key[:12]}… is not the key of the fingerprint given")
        now = time.time()

        def rows() -> Iterator[tuple]:
            for key, vector in items:
                yield (fp_key, key, *_encode(key, vector), now)

        with self._transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO fingerprints (fp_key, featurizer, fingerprint, created) VALUES (?, ?, ?, ?)",
                (fp_key, str(fingerprint.get("name", "?")), canonical_json(fingerprint), now))
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings (fp_key, audio_key, dim, dtype, crc32, vector, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", rows())

    # -- housekeeping ----------------------------------------------------------------------------------------
    @_guarded
    def info(self) -> CacheInfo:
        """The database path, its size on disk and the entries per fingerprint (largest first)."""
        rows = self._conn.execute(
            "SELECT f.fp_key, f.featurizer, f.fingerprint, f.created, COUNT(e.audio_key), "
            "COALESCE(SUM(LENGTH(e.vector)), 0) FROM fingerprints f "
            "LEFT JOIN embeddings e ON e.fp_key = f.fp_key GROUP BY f.fp_key").fetchall()
        entries = [FingerprintEntry(fp_key=k, featurizer=name, fingerprint=json.loads(fp), entries=n, bytes=b,
                                    created=created) for k, name, fp, created, n, b in rows]
        entries.sort(key=lambda e: (-e.entries, e.featurizer, e.fp_key))
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
                   if p.exists())
        return CacheInfo(path=self.path, size_bytes=size, fingerprints=tuple(entries))

    @_guarded
    def find_fingerprints(self, prefix: str) -> list[str]:
        """The fingerprint keys that start with ``prefix`` (as ``sertk cache info`` shows them, shortened)."""
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._conn.execute("SELECT fp_key FROM fingerprints WHERE fp_key LIKE ? ESCAPE '\\'", (like,))
        return sorted(r[0] for r in rows)

    @_guarded
    def count(self, fp_key: str | None = None, featurizer: str | None = None) -> int:
        """How many embeddings :meth:`clear` with the same arguments would delete."""
        where, args = self._where(fp_key, featurizer)
        return self._conn.execute(f"SELECT COUNT(*) FROM embeddings {where}", args).fetchone()[0]

    @_guarded
    def clear(self, fp_key: str | None = None, featurizer: str | None = None) -> int:
        """Delete embeddings: all of them, or those of one fingerprint key and/or featurizer name.

        Returns the number of embeddings deleted. Clearing everything also forgets the audio digest memo and
        compacts the file.
        """
        where, args = self._where(fp_key, featurizer)
        with self._transaction():
            deleted = self._conn.execute(f"DELETE FROM embeddings {where}", args).rowcount
            fwhere, fargs = self._where(fp_key, featurizer, table="fingerprints")
            self._conn.execute(f"DELETE FROM fingerprints {fwhere}", fargs)
            if fp_key is None and featurizer is None:
                self._conn.execute("DELETE FROM audio_digests")
        try:
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:  # another process is using the cache: compact another time
            logger.info("embedding cache %s: not compacted (%s)", self.path, exc)
        return deleted

    @staticmethod
    def _where(fp_key: str | None, featurizer: str | None, table: str = "embeddings") -> tuple[str, list]:
        clauses, args = [], []
        if fp_key is not None:
            clauses.append("fp_key = ?")
            args.append(fp_key)
        if featurizer is not None:
            if table == "fingerprints":
                clauses.append("featurizer = ?")
            else:
                clauses.append("fp_key IN (SELECT fp_key FROM fingerprints WHERE featurizer = ?)")
            args.append(featurizer)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception (KeyboardInterrupt included)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _hash_files(paths: list[str]) -> list[str | OSError]:
    """:func:`audio_key` of each path (its OSError where it cannot be read), in threads: hashlib releases the GIL
    while it hashes, so the threads read and hash files in parallel (the cores this process may use, 2 to 8). Each
    thread takes one contiguous share of the files, so the pool costs a few tasks, not one per file."""
    def keys(share: list[str]) -> list[str | OSError]:
        out: list[str | OSError] = []
        for path in share:
            try:
                out.append(audio_key(path))
            except OSError as exc:
                out.append(exc)
        return out

    from sertk.machine import cpu_info

    threads = min(8, max(2, cpu_info()["cores"]), len(paths))
    if threads < 2:
        return keys(paths)
    from concurrent.futures import ThreadPoolExecutor

    size = -(-len(paths) // threads)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sertk-hash") as pool:
        shares = pool.map(keys, [paths[i:i + size] for i in range(0, len(paths), size)])
        return [key for share in shares for key in share]


def _stamp(path: str, st: os.stat_result | None = None) -> tuple[int, int, int, int] | None:
    try:
        st = st or os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _encode(key: str, vector: np.ndarray) -> tuple[int, str, int, bytes]:
    array = np.asarray(vector)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"embedding for audio {key[:12]}… must be a non-empty 1-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"embedding for audio {key[:12]}… must be real numbers, got dtype {array.dtype}")
    data = np.ascontiguousarray(array, dtype=STORED_DTYPE)
    if not np.isfinite(data).all():
        raise ValueError(f"embedding for audio {key[:12]}… has non-finite values")
    blob = data.tobytes()
    return data.size, STORED_DTYPE_NAME, zlib.crc32(blob), blob


def _decode(dim: Any, dtype: Any, crc: Any, blob: Any) -> np.ndarray | None:
    if dtype != STORED_DTYPE_NAME or not isinstance(dim, int) or dim <= 0 or not isinstance(blob, bytes):
        return None
    if len(blob) != dim * STORED_DTYPE.itemsize or zlib.crc32(blob) != crc:
        return None
    vector = np.frombuffer(blob, dtype=STORED_DTYPE).astype(np.float32)
    if not np.isfinite(vector).all():
        return None
    return vector
