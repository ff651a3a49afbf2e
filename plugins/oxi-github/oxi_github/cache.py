"""A small SQLite file that outlives one `oxi tick`: GitHub's answers kept with their ETags (so
the next process asks conditionally and a 304 costs nothing), rate-limit blocks every process
must respect, and facts worth remembering (a pull request's files at a head commit)."""

from __future__ import annotations

import json
import threading
import weakref
from pathlib import Path
from typing import Any

import attrs

from oxi_core.ledger import driver

# Under the repository's state folder: the forge and the GitHub source share it, so a rate
# limit one of them met holds for the other (per token).
SHARED_FILE = ("github", "cache.sqlite")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, etag TEXT NOT NULL, "
    "body TEXT NOT NULL, link TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


@attrs.frozen
class CachedResponse:
    etag: str
    body: Any
    link: str = ""


class ResponseCache:
    """Thread-safe; several processes may share the file (SQLite's locking, WAL)."""

    def __init__(self, path: Path | None) -> None:
        """``path`` None keeps everything in memory (one process only)."""
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # oxi's own SQLite connection: WAL, and the busy waits that let several processes
        # create a new file at once (switching a new file to WAL is refused at once, not
        # waited for, when another process holds it).
        self._conn = (driver.connect(str(path), timeout_s=10.0) if path is not None else
                      driver.sqlite_module().connect(":memory:", check_same_thread=False,
                                                     isolation_level=None))
        for statement in SCHEMA:
            self._conn.execute(statement)
        self._finalizer = weakref.finalize(self, self._conn.close)

    def close(self) -> None:
        with self._lock:
            self._finalizer()

    def response(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._conn.execute("SELECT etag, body, link FROM responses WHERE key = ?",
                                     (key,)).fetchone()
        if row is None:
            return None
        return CachedResponse(row[0], json.loads(row[1]), row[2])

    def store_response(self, key: str, response: CachedResponse) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO responses (key, etag, body, link) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET etag = excluded.etag, body = excluded.body, "
                "link = excluded.link", (key, response.etag, json.dumps(response.body),
                                         response.link))

    def fact(self, key: str) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def remember(self, key: str, value: Any) -> None:
        with self._lock:
            if value is None:
                self._conn.execute("DELETE FROM facts WHERE key = ?", (key,))
                return
            self._conn.execute(
                "INSERT INTO facts (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)))

    def forget(self, prefix: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM facts WHERE key >= ? AND key < ?",
                               (prefix, prefix + "\uffff"))


def shared_cache(state_dir: Path) -> ResponseCache:
    """The cache the forge and the GitHub source of a repository share."""
    return ResponseCache(state_dir.joinpath(*SHARED_FILE))
