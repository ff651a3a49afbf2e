"""Codex's exec --json events, as recorded from codex 0.169.0, through oxi_codex.events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from oxi_codex.events import (
    CodexRun,
    CodexStream,
    build_result,
    classify_failure,
    normalize_usage,
    parse_line,
    replay,
    to_canonical,
)
from oxi_codex.session_file import SessionSummary, ToolCallRecord

from oxi_core.agentic.rates import load_rate_card
from oxi_core.agentic.runner import RunOutcome
from oxi_core.agentic.types import CanonicalEvent, CanonicalKind, CostSource, Usage
from oxi_core.models import Classification

FIXTURES = Path(__file__).parent / "fixtures"
GPT55 = load_rate_card().lookup("gpt-5.5")


def lines(name: str) -> list[str]:
    return (FIXTURES / f"codex_{name}.jsonl").read_text().splitlines()


def feed(*raw: str) -> CodexRun:
    return CodexStream().feed_lines(raw)


def exited(code: int | None = 0, **kw: Any) -> RunOutcome:
    return RunOutcome(exit_code=code, duration_s=2.0, pid=99, **kw)


def kinds(name: str) -> list[tuple[str, str]]:
    stream = CodexStream()
    out = []
    for line in lines(name):
        for event in stream.feed_line(line):
            label = event.data.get("subtype") or event.data.get("tool") or ""
            out.append((event.kind.value, str(label)))
    return out


def test_known_model_run_maps_to_system_assistant_result_and_succeeds() -> None:
    assert kinds("known_model") == [
        ("system", "thread.started"),
        ("system", "turn.started"),
        ("assistant", ""),
        ("result", "turn.completed"),
    ]
    run = feed(*lines("known_model"))
    result = build_result(run, exited(0), model="gpt-5.5")
    assert result.classification is Classification.SUCCESS
    assert result.usage == Usage(
        input_tokens=120, output_tokens=23, cached_tokens=20, reasoning_tokens=7
    )
    assert result.usage.total == 150  # codex's total_tokens
    assert result.session_id == "01a209e9-771e-7952-9245-6792fcfd6bc7"
    assert (result.final_text, result.turns, result.agent) == ("hi from fake server", 1, "codex")
    assert result.cost_source is CostSource.RATE_CARD
    assert GPT55 is not None
    assert result.cost_usd == pytest.approx(
        (100 * GPT55.input + 20 * GPT55.cached_input + 23 * GPT55.output + 7 * GPT55.reasoning)
        / 1e6
    )


def test_an_unknown_model_warning_item_is_a_system_event_not_a_failure() -> None:
    assert ("system", "warning") in kinds("hi")
    run = feed(*lines("hi"))
    assert run.warnings and "fake-model" in run.warnings[0]
    assert build_result(run, exited(0), model="gpt-5.5").classification is (Classification.SUCCESS)


def test_command_execution_is_a_shell_tool_use_then_its_result() -> None:
    assert kinds("command_execution")[2:5] == [
        ("system", "turn.started"),
        ("tool_use", "shell"),
        ("tool_result", "shell"),
    ]
    events = [
        e
        for line in lines("command_execution")
        for e in CodexStream().feed_line(line)
        if e.kind is CanonicalKind.TOOL_RESULT
    ]
    [done] = events
    assert done.data["is_error"] is False
    assert done.data["exit_code"] == 0
    assert done.data["content"] == "ok\n"
    run = feed(*lines("command_execution"))
    assert (run.tool_steps, run.turns) == (1, 2)
    assert run.actions == [
        ToolCallRecord(
            "shell", True, "/bin/bash -lc 'echo hi > made_by_codex.txt && echo ok' (exit 0)"
        )
    ]


def test_file_change_is_an_edit_tool_use() -> None:
    assert [k for k in kinds("file_change") if k[0].startswith("tool")] == [
        ("tool_use", "edit"),
        ("tool_result", "edit"),
    ]
    run = feed(*lines("file_change"))
    assert run.actions[0].ok
    assert "/home/op/repo/notes.txt" in run.actions[0].detail


def test_a_completed_tool_item_without_a_start_still_gets_one_tool_use() -> None:
    completed = [line for line in lines("command_execution") if '"item.started"' not in line]
    tool_events = [
        e.kind
        for line in completed
        for e in to_canonical(json.loads(line))
        if e.kind in (CanonicalKind.TOOL_USE, CanonicalKind.TOOL_RESULT)
    ]
    assert tool_events == [CanonicalKind.TOOL_USE, CanonicalKind.TOOL_RESULT]


def test_reasoning_is_an_assistant_event_marked_reasoning_and_its_tokens_are_apart() -> None:
    stream = CodexStream()
    reasoning = [
        e for line in lines("reasoning") for e in stream.feed_line(line) if e.data.get("reasoning")
    ]
    assert [e.data["text"] for e in reasoning] == ["**Thinking** about the fake task"]
    result = build_result(stream.run, exited(0), model="gpt-5.5")
    assert (result.usage.reasoning_tokens, result.usage.output_tokens) == (7, 23)
    assert result.final_text == "hi from fake server"


def test_401_is_a_credentials_setup_error() -> None:
    result = build_result(feed(*lines("error_401")), exited(1), model="gpt-5.5")
    assert result.classification is Classification.SETUP_ERROR
    assert result.reason.startswith("credentials rejected: unexpected status 401 Unauthorized")
    assert (result.cost_usd, result.cost_source, result.usage) == (0.0, CostSource.NONE, Usage())
    assert result.budget_undercount is None  # nothing was answered, nothing to undercount


def test_500_high_demand_is_transient() -> None:
    result = build_result(feed(*lines("error_500")), exited(1), model="gpt-5.5")
    assert result.classification is Classification.RETRYABLE_TRANSIENT
    assert "high demand" in result.reason
    assert result.rate_limit_exhausted is False


@pytest.mark.parametrize(
    ("message", "classification", "rate_limited"),
    [
        (
            "exceeded retry limit, last status: 429 Too Many Requests, request id: r1",
            Classification.RETRYABLE_TRANSIENT,
            True,
        ),
        (
            "Rate limit reached for gpt-5.5. Please try again in 2.5s.",
            Classification.RETRYABLE_TRANSIENT,
            True,
        ),
        (
            "unexpected status 529 <unknown status code>: overloaded, url: http://h/v1",
            Classification.RETRYABLE_TRANSIENT,
            False,
        ),
        (
            "unexpected status 503 Service Unavailable: down",
            Classification.RETRYABLE_TRANSIENT,
            False,
        ),
        (
            "exceeded retry limit, last status: 500 Internal Server Error",
            Classification.RETRYABLE_TRANSIENT,
            False,
        ),
        (
            "stream disconnected before completion: Transport error: network error: error "
            "decoding response body",
            Classification.RETRYABLE_TRANSIENT,
            False,
        ),
        (
            "stream disconnected before completion: idle timeout waiting for SSE",
            Classification.RETRYABLE_TRANSIENT,
            False,
        ),
        ("unexpected status 403 Forbidden: no", Classification.SETUP_ERROR, False),
        ("unexpected status 400 Bad Request: context too long", Classification.FAILED, False),
    ],
)
def test_failure_messages_classify_by_status_then_wording(
    message: str, classification: Classification, rate_limited: bool
) -> None:
    got, reason, extra = classify_failure(message)
    assert got is classification, reason
    assert bool(extra.get("rate_limit_exhausted")) is rate_limited


def test_a_stated_retry_delay_is_honoured() -> None:
    _, _, extra = classify_failure("Rate limit reached. Please try again in 2.5s.")
    assert extra["retry_after_s"] == 2.5
    _, _, extra = classify_failure("429 Too Many Requests; retry after 700ms")
    assert extra["retry_after_s"] == pytest.approx(0.7)


def test_idle_timeout_failure_is_reported_as_stalled() -> None:
    run = feed(
        *lines("error_500")[:2],
        json.dumps(
            {
                "type": "turn.failed",
                "error": {
                    "message": "stream disconnected before completion: idle timeout waiting for SSE"
                },
            }
        ),
    )
    result = build_result(run, exited(1), model="gpt-5.5")
    assert result.classification is Classification.RETRYABLE_TRANSIENT
    assert result.reason.startswith("stalled: ")


def test_turn_failed_decides_even_when_codex_exits_0() -> None:
    run = feed(*lines("error_401"))
    assert build_result(run, exited(0), model="gpt-5.5").classification is (
        Classification.SETUP_ERROR)


def test_resumed_thread_reports_the_difference_from_the_previous_totals() -> None:
    first = build_result(feed(*lines("known_model")), exited(0), model="gpt-5.5")
    baseline = normalize_usage(json.loads(lines("known_model")[-1])["usage"])
    second = build_result(
        feed(*lines("resume_turn2")), exited(0), model="gpt-5.5", baseline=baseline
    )
    assert second.usage == first.usage == Usage(120, 23, 20, 7)
    assert second.cost_usd == first.cost_usd
    unaware = build_result(feed(*lines("resume_turn2")), exited(0), model="gpt-5.5")
    assert unaware.usage == Usage(240, 46, 40, 14)  # cumulative, when nothing came before


def test_cumulative_totals_win_over_summing_several_turn_completed() -> None:
    run = feed(*lines("known_model"), *lines("resume_turn2")[1:])
    assert run.completed_turns == 2
    result = build_result(run, exited(0), model="gpt-5.5")
    assert result.usage == Usage(240, 46, 40, 14)  # the last total, not 360


def test_missing_reasoning_count_is_taken_from_the_session_file() -> None:
    usage = {"input_tokens": 120, "cached_input_tokens": 20, "output_tokens": 30}
    run = feed(*lines("known_model")[:3], json.dumps({"type": "turn.completed", "usage": usage}))
    without = build_result(run, exited(0), model="gpt-5.5")
    assert without.budget_undercount is not None
    assert "reasoning tokens missing" in without.budget_undercount
    session = SessionSummary(None, {**usage, "reasoning_output_tokens": 7})
    with_file = build_result(run, exited(0), model="gpt-5.5", session=session)
    assert with_file.budget_undercount is None
    assert with_file.usage == Usage(120, 23, 20, 7)


def test_a_killed_run_takes_its_usage_from_the_session_file_or_flags_an_undercount() -> None:
    partial = lines("command_execution")[:5]  # a tool ran; no turn.completed
    run = feed(*partial)
    killed = build_result(run, exited(None, stalled=True), model="gpt-5.5", stall_timeout_s=30)
    assert killed.classification is Classification.RETRYABLE_TRANSIENT
    assert killed.budget_undercount is not None
    total = {
        "input_tokens": 100,
        "cached_input_tokens": 0,
        "output_tokens": 20,
        "reasoning_output_tokens": 0,
    }
    known = build_result(
        run, exited(None, stalled=True), model="gpt-5.5", session=SessionSummary(None, total)
    )
    assert known.usage == Usage(100, 20)
    assert known.budget_undercount is None


def test_a_model_missing_from_the_rate_card_has_no_cost_and_says_so() -> None:
    result = build_result(feed(*lines("known_model")), exited(0), model="mystery-model")
    assert (result.cost_usd, result.cost_source) == (0.0, CostSource.NONE)
    assert result.budget_undercount is not None and "mystery-model" in result.budget_undercount


def failed_command(command: str = "ls /nope", code: int = 2) -> list[str]:
    item = {
        "id": "item_1",
        "type": "command_execution",
        "command": command,
        "aggregated_output": "denied\n",
        "exit_code": code,
        "status": "failed",
    }
    return [json.dumps({"type": "item.completed", "item": item})]


def test_a_sandboxed_run_whose_every_command_failed_is_a_failure_even_with_exit_0() -> None:
    head, tail = lines("known_model")[:2], lines("known_model")[2:]
    run = feed(*head, *failed_command(), *tail)
    result = build_result(run, exited(0), model="gpt-5.5")
    assert result.classification is Classification.FAILED
    assert result.reason.startswith("every tool call was refused by the sandbox or failed")
    assert "ls /nope (exit 2)" in result.reason
    unsandboxed = build_result(run, exited(0), model="gpt-5.5", sandboxed=False)
    assert unsandboxed.classification is Classification.SUCCESS


def test_refusals_only_the_session_file_shows_make_the_run_fail() -> None:
    run = feed(*lines("known_model"))  # the JSON stream shows no tool call at all
    session = SessionSummary(
        None,
        None,
        (
            ToolCallRecord("apply_patch", False, "apply_patch (patch rejected: read-only sandbox)"),
            ToolCallRecord("exec_command", False, "exec_command echo x > made.txt (exit 1)"),
        ),
    )
    result = build_result(run, exited(0), model="gpt-5.5", session=session)
    assert result.classification is Classification.FAILED
    assert "patch rejected" in result.reason


def test_one_successful_command_among_failures_keeps_the_success() -> None:
    head, tail = lines("command_execution")[:5], lines("command_execution")[5:]
    run = feed(*head, *failed_command(), *tail)
    assert build_result(run, exited(0), model="gpt-5.5").classification is (Classification.SUCCESS)


def test_more_turns_than_the_limit_is_a_failure_even_if_the_run_finished() -> None:
    run = feed(*lines("command_execution"))
    result = build_result(run, exited(0), model="gpt-5.5", max_turns=1)
    assert result.classification is Classification.FAILED
    assert result.reason.startswith("max turns reached: 2 model turns for a limit of 1")
    assert build_result(run, exited(0), model="gpt-5.5", max_turns=2).ok


@pytest.mark.parametrize(
    ("outcome", "classification", "reason"),
    [
        (exited(0), Classification.RETRYABLE_TRANSIENT, "exited 0 without turn.completed"),
        (exited(-15), Classification.RETRYABLE_TRANSIENT, "killed"),
        (exited(130), Classification.RETRYABLE_TRANSIENT, "interrupted"),
        (exited(None, timed_out=True), Classification.RETRYABLE_TRANSIENT, "timed out"),
        (exited(None, line_too_long=True), Classification.FAILED, "over 1 MB"),
        (exited(None, cancelled=True), Classification.FAILED, "cancelled"),
        (
            exited(None, spawn_error="FileNotFoundError: codex"),
            Classification.FAILED,
            "cannot start codex",
        ),
        (
            exited(
                1,
                stderr_tail="Reading additional input from stdin...\nNot inside a trusted "
                "directory and --skip-git-repo-check was not specified.",
            ),
            Classification.FAILED,
            "codex exited 1: Not inside a trusted directory",
        ),
    ],
)
def test_runs_without_a_turn_result(
    outcome: RunOutcome, classification: Classification, reason: str
) -> None:
    run = feed(*lines("known_model")[:3])
    result = build_result(run, outcome, model="gpt-5.5")
    assert result.classification is classification
    assert reason in result.reason


def test_a_non_json_line_is_counted_and_reported_never_a_crash() -> None:
    stream = CodexStream()
    noise = stream.feed_line("Reading additional input from stdin...")
    assert [e.data["subtype"] for e in noise] == ["non_json_line"]
    stream.feed_lines(lines("known_model"))
    assert stream.run.non_json_lines == 1
    assert build_result(stream.run, exited(0), model="gpt-5.5").ok


# -- the round trip (T2-32): normalised events replay into the same result --------------------


@st.composite
def successful_runs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, int], str]:
    """A valid Codex event sequence of a successful run, and its last cumulative usage."""
    thread = draw(st.uuids()).hex
    events: list[dict[str, Any]] = [{"type": "thread.started", "thread_id": thread}]
    counter = iter(range(10_000))
    text = st.text(max_size=30)
    totals = {
        "input_tokens": 0,
        "cached_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "output_tokens": 0,
        "reasoning_output_tokens": 0,
    }
    for _turn in range(draw(st.integers(1, 3))):
        events.append({"type": "turn.started"})
        for kind in draw(
            st.lists(
                st.sampled_from(
                    [
                        "agent_message",
                        "reasoning",
                        "command_execution",
                        "file_change",
                        "mcp_tool_call",
                        "web_search",
                        "todo_list",
                        "error",
                    ]
                ),
                max_size=6,
            )
        ):
            item: dict[str, Any] = {"id": f"item_{next(counter)}", "type": kind}
            if kind in ("agent_message", "reasoning"):
                item["text"] = draw(text)
            elif kind == "command_execution":
                item.update(
                    command=draw(text),
                    aggregated_output=draw(text),
                    exit_code=0,
                    status="completed",
                )
            elif kind == "file_change":
                item.update(changes=[{"path": "/r/a.txt", "kind": "add"}], status="completed")
            elif kind == "mcp_tool_call":
                item.update(
                    server="s",
                    tool="t",
                    arguments={},
                    result={"ok": True},
                    error=None,
                    status="completed",
                )
            elif kind == "web_search":
                item["query"] = draw(text)
            elif kind == "todo_list":
                item["items"] = [{"text": draw(text), "completed": False}]
            else:
                item["message"] = draw(text)
            if kind not in ("agent_message", "reasoning", "error") and draw(st.booleans()):
                events.append({"type": "item.started", "item": {**item, "status": "in_progress"}})
                if draw(st.booleans()):
                    events.append({"type": "item.updated", "item": item})
            events.append({"type": "item.completed", "item": item})
        events.append(
            {
                "type": "item.completed",
                "item": {
                    "id": f"item_{next(counter)}",
                    "type": "agent_message",
                    "text": draw(text),
                },
            }
        )
        step = st.integers(0, 50_000)
        input_step, output_step = draw(step), draw(step)
        reasoning_step = draw(st.integers(0, output_step))
        cached_step = draw(st.integers(0, input_step))
        totals = {
            "input_tokens": totals["input_tokens"] + input_step,
            "cached_input_tokens": totals["cached_input_tokens"] + cached_step,
            "cache_write_input_tokens": 0,
            "output_tokens": totals["output_tokens"] + output_step,
            "reasoning_output_tokens": totals["reasoning_output_tokens"] + reasoning_step,
        }
        events.append({"type": "turn.completed", "usage": dict(totals)})
    return events, totals, thread


@settings(max_examples=200, deadline=None)
@given(successful_runs())
def test_normalised_events_replay_into_a_result_event_with_the_same_tokens(
    generated: tuple[list[dict[str, Any]], dict[str, int], str],
) -> None:
    raw_events, totals, thread = generated
    started: set[str] = set()
    normalised: list[CanonicalEvent] = [
        event for raw in raw_events for event in to_canonical(raw, started)
    ]
    assert {event.kind for event in normalised} <= set(CanonicalKind)

    event = build_result(replay(normalised), exited(0), model="gpt-5.5").result_event()

    assert event is not None
    assert event["classification"] == "SUCCESS"
    assert event["session_id"] == thread
    assert event["input_tokens"] == totals["input_tokens"]
    assert event["cached_tokens"] == totals["cached_input_tokens"]
    assert event["reasoning_tokens"] == totals["reasoning_output_tokens"]
    assert event["output_tokens"] + event["reasoning_tokens"] == totals["output_tokens"]
    live = CodexStream().feed_lines(json.dumps(raw) for raw in raw_events)
    assert build_result(live, exited(0), model="gpt-5.5").result_event() == event


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@example({"a": 1}, "\x85", 0)  # unicode whitespace after the object: json.loads refuses
@given(st.dictionaries(st.text(), json_values, max_size=5), st.text(max_size=3), st.integers(0, 40))
def test_parse_line_agrees_with_json_loads(value: dict[str, Any], tail: str, cut: int) -> None:
    for line in (json.dumps(value), json.dumps(value) + tail, json.dumps(value)[:cut]):
        if not line.startswith("{"):
            continue
        try:
            expected = json.loads(line)
        except ValueError:
            expected = None
        assert parse_line(line) == (expected if isinstance(expected, dict) else None)
