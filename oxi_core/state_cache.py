"""Small answers kept in the state folder between processes, each under the key it holds for.

One JSON file per answer: its key and its value. A file that is missing, unreadable, corrupt,
written by another format or under another key is no answer (the caller asks again), never an
error. Written whole (a partial file renamed over the old one) and readable by its owner only:
some values come from configuration that can hold credentials.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT = 1


def _record(state_dir: Path | None, name: str) -> dict[str, Any] | None:
    if state_dir is None:
        return None
    try:
        data = json.loads((state_dir / name).read_text())
        if isinstance(data, dict) and data.get("format") == FORMAT and "value" in data:
            return data
    except (OSError, ValueError):
        pass  # none yet, or unreadable: ask again
    return None


def stored_key(state_dir: Path | None, name: str) -> Any | None:
    """The key ``state_dir/name`` was kept under (for a key that names what to check), or
    None."""
    found = _record(state_dir, name)
    return found.get("key") if found else None


def load(state_dir: Path | None, name: str, key: Any) -> Any | None:
    """The value kept in ``state_dir/name`` under ``key`` (JSON-comparable), or None."""
    found = _record(state_dir, name)
    return found["value"] if found and found.get("key") == key else None


def save(state_dir: Path | None, name: str, key: Any, value: Any) -> None:
    """Keep ``value`` under ``key`` (both JSON) in ``state_dir/name``, mode 0600. Never creates
    the state folder: a check of a repository oxi has not run in writes nothing."""
    if state_dir is None or not state_dir.is_dir() or load(state_dir, name, key) == value:
        return
    target = state_dir / name
    partial = target.with_name(f"{name}.{os.getpid()}")
    try:
        partial.unlink(missing_ok=True)  # a leftover of a process that had this pid
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump({"format": FORMAT, "key": key, "value": value}, file)
        os.replace(partial, target)  # whole or not at all, whoever writes at the same time
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only state folder: asked again next time
