"""Codex's session file: token totals and tool calls the JSON stream does not show (T2-33).

Codex writes ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<timestamp>-<thread id>.jsonl`` (none
with ``--ephemeral``). Lines are ``{timestamp, ordinal, type, payload}``; this module reads:

- ``event_msg`` / ``token_count``: ``info.total_token_usage`` is the thread's cumulative usage,
  with ``reasoning_output_tokens``;
- ``event_msg`` / ``task_started``: the id of each turn;
- ``response_item`` ``function_call`` / ``custom_tool_call`` and their ``*_output``: every
  tool call and what it returned. A command the sandbox refused ("Read-only file system") or a
  rejected patch shows up here and **not** as an item in ``codex exec --json``.

The file may land a little after ``turn.completed``: :func:`find_session_file` polls for it
(50 ms x 20, one second in all) and gives up with None, which the adapter reports as a
possible budget undercount rather than guessing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

POLL_INTERVAL_S = 0.05
POLL_ATTEMPTS = 20
# The tools that act on the working tree; others (write_stdin, view_image, goals) do not count.
ACTION_TOOLS = frozenset({"exec_command", "shell", "shell_command", "local_shell", "apply_patch"})
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_EXIT = re.compile(r"(?:Process exited with code|Exit code:)\s*(-?\d+)")
_REFUSED = re.compile(
    r"\brejected\b|blocked by|permission denied|not permitted|"
    r"read-only file system",
    re.IGNORECASE,
)


@attrs.frozen
class ToolCallRecord:
    """One tool call and whether it did what it was asked."""

    name: str
    ok: bool
    detail: str = ""


@attrs.frozen
class SessionSummary:
    path: Path | None
    total: Mapping[str, Any] | None  # the last token_count's total_token_usage (cumulative)
    tool_calls: tuple[ToolCallRecord, ...] = ()  # of the file's last turn
    turn_id: str | None = None

    @property
    def reasoning_tokens(self) -> int | None:
        value = None if self.total is None else self.total.get("reasoning_output_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def valid_session_id(session_id: str) -> bool:
    """A thread id safe to put in a glob (it comes from the agent's output: untrusted)."""
    return bool(_SESSION_ID.match(session_id))


def find_session_file(
    session_id: str,
    sessions_dir: Path,
    *,
    attempts: int = POLL_ATTEMPTS,
    interval_s: float = POLL_INTERVAL_S,
) -> Path | None:
    """``sessions/YYYY/MM/DD/rollout-*-<id>.jsonl``, polling until it exists; None on timeout."""
    if not valid_session_id(session_id):
        return None
    pattern = f"*/*/*/rollout-*-{session_id}.jsonl"
    for attempt in range(max(1, attempts)):
        found = [path for path in sessions_dir.glob(pattern) if path.is_file()]
        if found:
            return max(found, key=lambda path: path.stat().st_mtime)
        if attempt + 1 < attempts:
            time.sleep(interval_s)
    return None


def _output_ok(output: Any) -> tuple[bool, str]:
    if isinstance(output, Mapping):  # some versions send {"content": ..., "success": bool}
        success = output.get("success")
        text = str(output.get("content", ""))
        if isinstance(success, bool):
            return success, text
        output = text
    text = str(output)
    code = _EXIT.search(text)
    if code is not None:
        return int(code.group(1)) == 0, text
    return not _REFUSED.search(text), text


def _call_label(payload: Mapping[str, Any]) -> str:
    name = str(payload.get("name", "?"))
    arguments = payload.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
        if isinstance(parsed, Mapping):
            command = parsed.get("cmd") or parsed.get("command")
            if command:
                return f"{name} {command if isinstance(command, str) else json.dumps(command)}"
    return name


def _turn_of(payload: Mapping[str, Any]) -> str | None:
    meta = payload.get("internal_chat_message_metadata_passthrough")
    turn = meta.get("turn_id") if isinstance(meta, Mapping) else None
    return turn if isinstance(turn, str) else None


def parse_session(lines: Iterable[str], path: Path | None = None) -> SessionSummary:
    """Read a session file's lines (pure). Unreadable lines are skipped."""
    total: Mapping[str, Any] | None = None
    turn_id: str | None = None
    calls: dict[str, tuple[str, str | None]] = {}  # call_id -> (label, turn)
    outputs: dict[str, tuple[bool, str]] = {}
    order: list[str] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, Mapping):
            continue
        payload = record.get("payload")
        if not isinstance(payload, Mapping):
            continue
        kind = record.get("type")
        ptype = payload.get("type")
        if kind == "event_msg" and ptype == "token_count":
            info = payload.get("info")
            usage = info.get("total_token_usage") if isinstance(info, Mapping) else None
            if isinstance(usage, Mapping):
                total = usage
        elif kind == "event_msg" and ptype == "task_started":
            turn = payload.get("turn_id")
            turn_id = turn if isinstance(turn, str) else turn_id
        elif kind == "response_item" and ptype in ("function_call", "custom_tool_call"):
            if payload.get("name") in ACTION_TOOLS:
                call_id = str(payload.get("call_id"))
                calls[call_id] = (_call_label(payload), _turn_of(payload))
                order.append(call_id)
        elif kind == "response_item" and ptype in (
            "function_call_output",
            "custom_tool_call_output",
        ):
            outputs[str(payload.get("call_id"))] = _output_ok(payload.get("output"))
    records = []
    for call_id in order:
        label, turn = calls[call_id]
        if turn_id is not None and turn is not None and turn != turn_id:
            continue  # an earlier turn of a resumed thread
        ok, text = outputs.get(call_id, (False, "no output"))
        tail = text.strip().splitlines()[-1:] if text.strip() else []
        records.append(
            ToolCallRecord(
                label.split(" ", 1)[0],
                ok,
                f"{label[:120]} ({tail[0][:120] if tail else 'no output'})",
            )
        )
    return SessionSummary(path, total, tuple(records), turn_id)


def read_session(
    session_id: str,
    sessions_dir: Path,
    *,
    attempts: int = POLL_ATTEMPTS,
    interval_s: float = POLL_INTERVAL_S,
    require_tokens: bool = False,
) -> SessionSummary | None:
    """The summary of a thread's session file; None when no file turns up in time.

    With ``require_tokens`` the poll also waits (same budget) for a token_count to be written.
    """
    deadline = time.monotonic() + max(1, attempts) * interval_s
    path = find_session_file(session_id, sessions_dir, attempts=attempts, interval_s=interval_s)
    if path is None:
        return None
    while True:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        summary = parse_session(text.splitlines(), path)
        if summary.total is not None or not require_tokens or time.monotonic() >= deadline:
            return summary
        time.sleep(interval_s)


def read_reasoning_tokens(session_id: str, sessions_dir: Path) -> int | None:
    """The thread's cumulative reasoning tokens from its session file's last token_count;
    None when the file (or the count) does not appear within 50 ms x 20."""
    summary = read_session(session_id, sessions_dir, require_tokens=True)
    return None if summary is None else summary.reasoning_tokens
