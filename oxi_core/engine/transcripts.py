"""Each attempt's canonical event stream, redacted, under ``.oxi/transcripts/TASK/ATTEMPT.jsonl``.

What the agent said and did is otherwise lost when its process ends; `oxi task show` prints the
tail. A file stops growing at ``MAX_BYTES`` (one line says so), and only the newest
``[engine] transcripts_keep`` files are kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from oxi_core.agentic.types import CanonicalEvent
from oxi_core.log import redact
from oxi_core.models import isoformat, utcnow
from oxi_core.policy import RepoPaths

TRANSCRIPTS_DIR = "transcripts"
MAX_BYTES = 4 * 2**20


def transcripts_root(paths: RepoPaths) -> Path:
    return paths.state_dir / TRANSCRIPTS_DIR


def transcript_path(paths: RepoPaths, task_id: str, attempt: int) -> Path:
    # Task ids are T{tier}-{N} (the roadmap's id grammar): safe as a folder name.
    return transcripts_root(paths) / task_id / f"{attempt}.jsonl"


class TranscriptWriter:
    """Appends one redacted JSON line per canonical event; never raises into the agent's
    stream (a full disk loses the transcript, not the run)."""

    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._file: IO[str] | None = None
        self._written = 0
        self._truncated = False
        self._broken = False

    def write(self, event: CanonicalEvent) -> None:
        self.write_line({"kind": str(event.kind), "session_id": event.session_id,
                         "data": dict(event.data)})

    def write_line(self, record: Mapping[str, Any]) -> None:
        if self._broken or self._truncated:
            return
        line = json.dumps(redact({"ts": isoformat(utcnow()), **record}), default=str) + "\n"
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("w", encoding="utf-8")
            if self._written + len(line) > self.max_bytes:
                self._truncated = True
                line = json.dumps({"ts": isoformat(utcnow()), "kind": "truncated",
                                   "data": {"after_bytes": self._written}}) + "\n"
            self._file.write(line)
            self._file.flush()
            self._written += len(line)
        except OSError:
            self._broken = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def prune_transcripts(paths: RepoPaths, keep: int) -> int:
    """Remove all but the newest ``keep`` transcripts; returns how many went."""
    root = transcripts_root(paths)
    if not root.is_dir():
        return 0
    files = sorted(root.glob("*/*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = 0
    for old in files[max(keep, 0):]:
        try:
            old.unlink()
            removed += 1
        except OSError:
            continue
        if not any(old.parent.iterdir()):
            os.rmdir(old.parent)
    return removed


def transcript_tail(path: Path, lines: int = 20) -> list[dict[str, Any]]:
    """The last ``lines`` records of a transcript (none when it is gone)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            tail = handle.readlines()[-lines:] if lines > 0 else []
    except OSError:
        return []
    records = []
    for raw in tail:
        try:
            records.append(json.loads(raw))
        except ValueError:
            records.append({"kind": "unreadable", "data": {"text": raw.strip()}})
    return records


def describe(record: Mapping[str, Any], width: int = 160) -> str:
    """One line for a person: the event's kind and its text, tool or result."""
    data = record.get("data") or {}
    kind = record.get("kind", "?")
    text = ""
    for key in ("text", "name", "command", "reason", "classification", "subtype", "output"):
        value = data.get(key) if isinstance(data, Mapping) else None
        if value:
            text = str(value)
            break
    if not text:
        text = json.dumps(data, sort_keys=True, default=str)
    text = " ".join(text.split())
    return f"[{kind}] {text[:width]}"
