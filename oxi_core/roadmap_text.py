"""Reading roadmap.md's text: what every tick does, apart from parsing it (oxi_core/roadmap.py),
which a tick with nothing to ingest or dispatch never needs."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oxi_core.errors import RoadmapError


def read_roadmap_text(path: Path) -> str:
    """The roadmap's text; RoadmapError, saying how to fix it, when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise RoadmapError(
            f"no roadmap at {path}",
            hint="create roadmap.md (docs/roadmap-format.md shows the format), or point the "
                 "adapter's `roadmap` kwarg at yours",
        ) from error
    except IsADirectoryError as error:
        raise RoadmapError(f"{path} is a folder, not a roadmap file",
                           hint="point the adapter's `roadmap` kwarg at the markdown file") \
            from error
    except OSError as error:
        raise RoadmapError(f"cannot read {path}: {error.strerror or error}",
                           hint="check that the file exists and is readable by this user") \
            from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RoadmapError(f"{path} is not UTF-8 text (bad byte at offset {error.start})",
                           hint="re-save the file as UTF-8") from error


@functools.cache
def _sha256() -> Callable[[bytes], Any]:
    """CPython's own sha256 (the same digests as hashlib's), when it has one: hashlib loads
    OpenSSL on import, about 2 ms of every idle `oxi tick`, for the one digest a tick takes."""
    for module, name in (("_sha2", "sha256"), ("_sha256", "sha256")):  # 3.12+, 3.11
        try:
            found: Callable[[bytes], Any] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        return found
    import hashlib

    return hashlib.sha256


def text_digest(text: str) -> str:
    """The sha256 of ``text`` (UTF-8) in hex: what the ingest mark stores of the roadmap."""
    return str(_sha256()(text.encode()).hexdigest())
