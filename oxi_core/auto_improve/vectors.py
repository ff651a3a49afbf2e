"""Nearest neighbours by cosine similarity with sqlite-vec, loaded by its file path (``import
sqlite_vec`` would import numpy) into an in-memory database of the ledger's driver."""

from __future__ import annotations

import importlib.util
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oxi_core.auto_improve.embeddings import INSTALL_LINE, MissingDependency

_SUFFIX = {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")


def extension_path() -> Path:
    """sqlite-vec's loadable extension, without its suffix (what load_extension takes)."""
    spec = importlib.util.find_spec("sqlite_vec")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("auto-improve needs sqlite-vec, which is not installed",
                                hint=INSTALL_LINE)
    path = Path(next(iter(spec.submodule_search_locations))) / "vec0"
    if not path.with_suffix(_SUFFIX).is_file():
        raise MissingDependency(f"sqlite-vec's extension is missing at {path}{_SUFFIX}",
                                hint=f"reinstall it: {INSTALL_LINE}")
    return path


def connect() -> Any:
    """An in-memory database with sqlite-vec loaded."""
    from oxi_core.ledger import driver

    conn = driver.sqlite_module().connect(":memory:", check_same_thread=False)
    if not hasattr(conn, "enable_load_extension"):
        conn.close()
        raise MissingDependency(
            "this Python's SQLite cannot load extensions, which sqlite-vec needs",
            hint="pip install pysqlite3-binary (Linux), or use a Python built with "
                 "--enable-loadable-sqlite-extensions")
    conn.enable_load_extension(True)
    try:
        conn.load_extension(str(extension_path()))
    finally:
        conn.enable_load_extension(False)
    return conn


def unpack(vector: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(vector) // 4}f", vector)


def pack(values: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


class VectorIndex:
    """Vectors (float32 bytes, all of one length) searchable by cosine similarity."""

    def __init__(self, vectors: Sequence[bytes]) -> None:
        self.size = len(vectors)
        self.conn = connect()
        if not vectors:
            return
        dimensions = len(vectors[0]) // 4
        self.conn.execute(f"CREATE VIRTUAL TABLE items USING vec0("
                          f"embedding float[{dimensions}] distance_metric=cosine)")
        self.conn.executemany("INSERT INTO items (rowid, embedding) VALUES (?, ?)",
                              [(index, vector) for index, vector in enumerate(vectors)])

    def close(self) -> None:
        self.conn.close()

    def nearest(self, query: bytes, k: int = 1) -> list[tuple[int, float]]:
        """The ``k`` closest vectors as (index, cosine similarity), closest first."""
        if not self.size:
            return []
        rows = self.conn.execute(
            "SELECT rowid, distance FROM items WHERE embedding MATCH ? AND k = ? "
            "ORDER BY distance", (query, min(k, self.size))).fetchall()
        # Equal distances in index order, whatever order the extension returned them in.
        return sorted(((int(rowid), 1.0 - float(distance)) for rowid, distance in rows),
                      key=lambda found: (-found[1], found[0]))

    def best_similarity(self, query: bytes) -> float:
        """Cosine similarity to the closest vector (-1.0 when the index is empty)."""
        found = self.nearest(query, 1)
        return found[0][1] if found else -1.0
