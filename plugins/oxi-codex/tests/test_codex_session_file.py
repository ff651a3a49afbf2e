"""Codex's session files (T2-33): found by thread id, polled for, read for tokens and tools."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from oxi_codex.session_file import (
    find_session_file,
    parse_session,
    read_reasoning_tokens,
    read_session,
)

FIXTURES = Path(__file__).parent / "fixtures"
THREAD = "01a209e9-1297-7b70-8697-6dc8e746dd06"  # the recorded rollout's thread


def place(sessions: Path, thread: str = THREAD, text: str | None = None) -> Path:
    folder = sessions / "2026" / "11" / "23"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rollout-2026-11-23T19-36-39-{thread}.jsonl"
    path.write_text(
        text if text is not None else (FIXTURES / "codex_session_rollout.jsonl").read_text()
    )
    return path


def test_reads_the_last_token_counts_reasoning_tokens(tmp_path: Path) -> None:
    place(tmp_path)
    assert read_reasoning_tokens(THREAD, tmp_path) == 7
    summary = read_session(THREAD, tmp_path)
    assert summary is not None
    assert summary.total is not None and summary.total["input_tokens"] == 120
    assert summary.turn_id == "01a209e9-12ad-7f92-9711-a3e7a730b9e6"
    assert summary.tool_calls == ()


def test_gives_up_with_none_after_twenty_polls_of_fifty_ms(tmp_path: Path) -> None:
    started = time.monotonic()
    assert read_reasoning_tokens(THREAD, tmp_path) is None
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.5


def test_finds_a_file_that_lands_while_it_polls(tmp_path: Path) -> None:
    writer = threading.Timer(0.3, place, args=(tmp_path,))
    writer.start()
    try:
        started = time.monotonic()
        assert read_reasoning_tokens(THREAD, tmp_path) == 7
        assert time.monotonic() - started < 0.9
    finally:
        writer.cancel()


def test_waits_for_the_token_count_when_asked_to(tmp_path: Path) -> None:
    full = (FIXTURES / "codex_session_rollout.jsonl").read_text().splitlines()
    head = "\n".join(line for line in full if '"token_count"' not in line) + "\n"
    path = place(tmp_path, text=head)
    assert read_session(THREAD, tmp_path, attempts=2).total is None  # type: ignore[union-attr]
    writer = threading.Timer(0.2, path.write_text, args=("\n".join(full) + "\n",))
    writer.start()
    summary = read_session(THREAD, tmp_path, require_tokens=True)
    writer.join()
    assert summary is not None and summary.reasoning_tokens == 7


@pytest.mark.parametrize("thread", ["../../etc/passwd", "*", "a/b", "", "x" * 200])
def test_an_unsafe_thread_id_is_never_used_in_a_path(tmp_path: Path, thread: str) -> None:
    place(tmp_path)
    started = time.monotonic()
    assert find_session_file(thread, tmp_path) is None
    assert time.monotonic() - started < 0.1


def record(kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"timestamp": "t", "ordinal": 0, "type": kind, "payload": payload})


def call(call_id: str, turn: str, name: str = "exec_command", cmd: str = "ls") -> list[str]:
    meta = {"internal_chat_message_metadata_passthrough": {"turn_id": turn}}
    if name == "apply_patch":
        return [
            record(
                "response_item",
                {
                    "type": "custom_tool_call",
                    "name": name,
                    "call_id": call_id,
                    "input": "*** Begin Patch",
                    **meta,
                },
            )
        ]
    return [
        record(
            "response_item",
            {
                "type": "function_call",
                "name": name,
                "call_id": call_id,
                "arguments": json.dumps({"cmd": cmd}),
                **meta,
            },
        )
    ]


def output(call_id: str, text: str, custom: bool = False) -> str:
    kind = "custom_tool_call_output" if custom else "function_call_output"
    return record("response_item", {"type": kind, "call_id": call_id, "output": text})


def test_tool_calls_of_the_last_turn_with_what_they_returned() -> None:
    lines = [
        record("event_msg", {"type": "task_started", "turn_id": "turn-1"}),
        *call("c0", "turn-1", cmd="echo earlier"),
        output("c0", "Process exited with code 0"),
        record("event_msg", {"type": "task_started", "turn_id": "turn-2"}),
        *call("c1", "turn-2", "apply_patch"),
        output(
            "c1",
            "patch rejected: writing is blocked by read-only sandbox; rejected by "
            "user approval settings",
            custom=True,
        ),
        *call("c2", "turn-2", cmd="echo x > made.txt"),
        output(
            "c2",
            "Chunk ID: 9f\nProcess exited with code 1\nOutput:\n/bin/bash: line 1: "
            "made.txt: Read-only file system\n",
        ),
        *call("c3", "turn-2", cmd="true"),
        output("c3", "Process exited with code 0\nOutput:\n"),
        *call("c4", "turn-2", "view_image"),  # not an action on the tree: not counted
        "not json at all",
    ]
    summary = parse_session(lines)
    assert [(c.name, c.ok) for c in summary.tool_calls] == [
        ("apply_patch", False),
        ("exec_command", False),
        ("exec_command", True),
    ]
    assert "patch rejected" in summary.tool_calls[0].detail
    assert "Read-only file system" in summary.tool_calls[1].detail
    assert "echo x > made.txt" in summary.tool_calls[1].detail
    assert summary.total is None


def test_structured_outputs_report_their_own_success_flag() -> None:
    lines = [*call("c1", "t"), output("c1", "")]
    lines[-1] = record(
        "response_item",
        {
            "type": "function_call_output",
            "call_id": "c1",
            "output": {"content": "boom", "success": False},
        },
    )
    assert [c.ok for c in parse_session(lines).tool_calls] == [False]
