"""How many embeddings a cache folder has committed, read straight from its SQLite file while another process
writes it: what the kill-and-resume tests poll (opening an EmbeddingCache would run its checks and may wait)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sertk.featurization.cache import database_path


def committed_rows(cache_dir: Path) -> int:
    """Rows in the cache's embeddings table; 0 before the database or its schema exists."""
    if not database_path(cache_dir).exists():
        return 0
    conn = sqlite3.connect(database_path(cache_dir), timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()
