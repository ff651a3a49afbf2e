"""The one SQLite driver this process uses: the same module sqlite-utils picked.

sqlite-utils prefers ``pysqlite3`` (a SQLite that can load extensions such as sqlite-vec) and
falls back to the stdlib. Mixing the two in one process breaks sqlite-utils' error handling,
so every connection oxi opens goes through here.
"""

from __future__ import annotations

import functools
import importlib
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any


@functools.cache
def sqlite_module() -> ModuleType:
    """The driver sqlite-utils uses: ``pysqlite3`` when it is installed, else the stdlib.

    This repeats sqlite_utils.utils' own choice rather than importing sqlite_utils (about 200 ms
    that opening the ledger does not need); tests/test_ledger.py checks that the two agree.
    """
    loaded = sys.modules.get("sqlite_utils.utils")
    if loaded is not None:
        # sqlite_utils.utils binds ``sqlite3`` to the driver it imported (not re-exported).
        module: ModuleType = vars(loaded)["sqlite3"]
        return module
    try:
        return importlib.import_module("pysqlite3")
    except ImportError:
        return importlib.import_module("sqlite3")


def can_load_extensions() -> bool:
    conn = sqlite_module().connect(":memory:")
    try:
        return hasattr(conn, "enable_load_extension")
    finally:
        conn.close()


def connect(path: str, *, timeout_s: float = 30.0) -> Any:
    """A connection in autocommit mode: oxi issues BEGIN IMMEDIATE / COMMIT itself."""
    conn = sqlite_module().connect(
        path, timeout=timeout_s, isolation_level=None, check_same_thread=False
    )
    _enable_wal(conn, timeout_s)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def connect_read_only(path: Path, *, timeout_s: float = 30.0) -> Any:
    """A connection that can neither write nor create ``path`` nor switch its journal
    (SQLite's ``mode=ro`` URI, and ``query_only`` besides). Reading a WAL ledger still maps its
    ``-shm`` index, as every reader does; the database and its ``-wal`` are never written."""
    conn = sqlite_module().connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                   timeout=timeout_s, isolation_level=None,
                                   check_same_thread=False)
    conn.execute("PRAGMA query_only=1")
    conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    return conn


def _enable_wal(conn: Any, timeout_s: float) -> None:
    """Switch the file to WAL, retrying while another process holds the lock.

    Changing the journal mode needs an exclusive lock, and SQLite answers "database is locked"
    at once instead of calling the busy handler when two processes open a fresh file together.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite_module().OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
