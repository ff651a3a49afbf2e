"""Claude Code's stream-json, as recorded from claude 2.1.197, through oxi_claude.events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from oxi_claude.events import (
    PROGRESS,
    ClaudeRun,
    ClaudeStream,
    build_result,
    normalize_usage,
    to_canonical,
    translate_tool,
)

from oxi_core.agentic.rates import load_rate_card
from oxi_core.agentic.runner import RunOutcome
from oxi_core.agentic.types import CanonicalKind, CostSource, Usage
from oxi_core.models import Classification

FIXTURES = Path(__file__).parent / "fixtures"
DENIED_ID = "toolu_53ab36ef54a0427097494302"  # the Write refused in the denial fixtures


def lines(*names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        out += (FIXTURES / f"claude_{name}.jsonl").read_text().splitlines()
    return out


def obj(name: str) -> dict[str, Any]:
    [line] = lines(name)
    value: dict[str, Any] = json.loads(line)
    return value


def feed(*raw: str) -> ClaudeRun:
    return ClaudeStream().feed_lines(raw)


def exited(code: int | None = 0, **kw: Any) -> RunOutcome:
    return RunOutcome(exit_code=code, duration_s=1.5, pid=123, **kw)


def write_tool_use(tool_id: str = DENIED_ID, name: str = "Write") -> str:
    """An assistant line calling ``name`` with ``tool_id`` (shaped like the recorded one)."""
    event = obj("assistant_tool_use")
    block = event["message"]["content"][0]
    block["id"] = tool_id
    block["name"] = name
    return json.dumps(event)


def result_with(**changes: Any) -> str:
    event = obj("result_api_error_401")
    event.update(changes)
    return json.dumps(event)


def test_init_event_is_system_and_names_the_session_model_and_version() -> None:
    run = feed(*lines("system_init"))
    [event] = to_canonical(obj("system_init"))
    assert event.kind is CanonicalKind.SYSTEM
    assert event.session_id == "5819af54-af8e-4076-8c6d-457c1dca3145"
    assert (run.model, run.version) == ("claude-opus-4-8[1m]", "2.1.197")
    assert run.session_id == "5819af54-af8e-4076-8c6d-457c1dca3145"


def test_assistant_text_becomes_an_assistant_event_with_its_usage() -> None:
    [event] = to_canonical(obj("assistant_text"))
    assert event.kind is CanonicalKind.ASSISTANT
    assert event.data["text"] == "hi from fake server"
    assert event.data["model"] == "claude-opus-4-8"
    run = feed(*lines("assistant_text"))
    assert run.last_text == "hi from fake server"
    assert run.message_usage == {"msg_4a4f28e494b945e58e898d60": Usage(100, 1)}


def test_tool_use_block_becomes_tool_use_with_the_canonical_tool_name() -> None:
    [event] = to_canonical(obj("assistant_tool_use"))
    assert event.kind is CanonicalKind.TOOL_USE
    assert (event.data["name"], event.data["tool"]) == ("Bash", "shell")
    assert event.data["input"]["command"] == "echo hi > made_by_bash.txt && echo ok"
    assert event.data["id"] == "toolu_89c1e5cd4dec4ea280372d63"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("Write", "write"),
        ("Edit", "edit"),
        ("Bash", "shell"),
        ("Read", "read"),
        ("WebFetch", "webfetch"),
        ("mcp__github__list", "mcp__github__list"),
    ],
)
def test_tool_names_translate_to_the_canonical_vocabulary(name: str, canonical: str) -> None:
    assert translate_tool(name) == canonical


def test_tool_results_carry_their_error_flag() -> None:
    [ok] = to_canonical(obj("user_tool_result_ok"))
    [denied] = to_canonical(obj("user_tool_result_denied"))
    [written] = to_canonical(obj("user_tool_result_write"))
    assert ok.kind is denied.kind is written.kind is CanonicalKind.TOOL_RESULT
    assert (ok.data["is_error"], ok.data["content"]) == (False, "ok")
    assert denied.data["is_error"] is True
    assert "haven't granted it yet" in denied.data["content"]
    assert written.data["is_error"] is False


def test_stream_events_are_progress_only_and_only_the_usage_ones_are_decoded() -> None:
    stream = ClaudeStream()
    produced = [stream.feed_line(line) for line in lines("stream_event")]
    assert produced == [[PROGRESS]] * 6
    assert stream.run.events == 0  # the fold never sees them as events
    # message_start and message_delta carry the usage: the run keeps it (issue 9, 4b).
    assert stream.run.message_usage == {
        "msg_912c49dbeed04cb8acb67576": Usage(input_tokens=100, output_tokens=20)}


def test_a_run_that_stalls_after_message_start_is_priced_from_its_usage_and_flagged() -> None:
    started = lines("stream_event")[:2]  # message_start, content_block_start: then silence
    result = build_result(feed(*lines("system_init"), *started), exited(None, stalled=True))
    assert result.classification is Classification.RETRYABLE_TRANSIENT
    assert result.usage.input_tokens == 100
    assert result.cost_source is CostSource.ESTIMATE
    assert result.cost_usd > 0
    assert result.budget_undercount is not None and "stream events" in result.budget_undercount


def test_status_and_api_retry_are_system_events_and_the_retry_delay_is_kept() -> None:
    run = feed(*lines("system_status", "system_api_retry"))
    assert [e.kind for e in to_canonical(obj("system_status"))] == [CanonicalKind.SYSTEM]
    assert run.retries == 1
    assert run.retry_delay_s == pytest.approx(0.523)


def test_successful_result_classifies_success_with_provider_cost_and_tokens() -> None:
    run = feed(*lines("system_init", "assistant_text", "result_success"))
    result = build_result(run, exited(0))
    assert result.classification is Classification.SUCCESS
    assert result.reason == ""
    assert (result.cost_usd, result.cost_source) == (0.001, CostSource.PROVIDER)
    assert result.usage == Usage(input_tokens=100, output_tokens=20)
    assert (result.turns, result.final_text) == (1, "hi from fake server")
    assert result.session_id == "5819af54-af8e-4076-8c6d-457c1dca3145"
    assert (result.model, result.agent, result.exit_code) == ("claude-opus-4-8", "claude", 0)
    assert result.result_event()["input_tokens"] == 100


def test_json_output_format_result_reads_like_the_stream_one() -> None:
    result = build_result(feed(*lines("json_output_format")), exited(0))
    assert result.classification is Classification.SUCCESS
    assert result.usage == Usage(input_tokens=100, output_tokens=20)


def test_api_error_reported_as_subtype_success_is_a_credentials_setup_error() -> None:
    run = feed(*lines("system_init", "assistant_synthetic_api_error", "result_api_error_401"))
    assert run.result is not None and run.result["subtype"] == "success"  # sic
    result = build_result(run, exited(1))
    assert result.classification is Classification.SETUP_ERROR
    assert result.reason.startswith("credentials rejected (HTTP 401)")
    assert "fake failure 401" in result.reason
    assert (result.cost_usd, result.usage) == (0.0, Usage())
    assert run.model == "claude-opus-4-8[1m]"  # the <synthetic> model is not taken


@pytest.mark.parametrize("status", [500, 502, 529])
def test_server_errors_are_transient(status: int) -> None:
    result = build_result(feed(result_with(api_error_status=status)), exited(1))
    assert result.classification is Classification.RETRYABLE_TRANSIENT
    assert f"HTTP {status}" in result.reason
    assert result.rate_limit_exhausted is False


def test_rate_limit_is_transient_exhausted_and_honours_the_retry_delay() -> None:
    run = feed(
        *lines("system_api_retry"),
        result_with(api_error_status=429, result="API Error: Request rejected (429) · slow down"),
    )
    result = build_result(run, exited(1))
    assert result.classification is Classification.RETRYABLE_TRANSIENT
    assert result.rate_limit_exhausted is True
    assert result.retry_after_s == pytest.approx(0.523)


def test_rate_limit_without_a_visible_delay_leaves_the_delay_to_the_engine() -> None:
    result = build_result(feed(result_with(api_error_status=429)), exited(1))
    assert (result.rate_limit_exhausted, result.retry_after_s) == (True, None)


def test_connection_failure_without_a_status_is_transient() -> None:
    line = result_with(
        api_error_status=None, result="API Error: Unable to connect to API (ECONNRESET)"
    )
    result = build_result(feed(line), exited(1))
    assert result.classification is Classification.RETRYABLE_TRANSIENT
    assert "Unable to connect" in result.reason


def test_max_turns_is_a_failure() -> None:
    result = build_result(feed(*lines("result_error_max_turns")), exited(1))
    assert result.classification is Classification.FAILED
    assert result.reason == "max turns reached (Reached maximum number of turns (1))"
    assert result.turns == 2
    assert result.cost_usd == 0.001


def test_max_budget_is_a_failure() -> None:
    line = result_with(
        subtype="error_max_budget_usd",
        api_error_status=None,
        result=None,
        errors=["Reached maximum budget ($0.01)"],
    )
    result = build_result(feed(line), exited(1))
    assert result.classification is Classification.FAILED
    assert result.reason.startswith("max cost reached")


def test_a_run_whose_only_tool_call_was_refused_fails_naming_the_tool() -> None:
    run = feed(write_tool_use(), *lines("user_tool_result_denied", "result_permission_denials"))
    result = build_result(run, exited(0))
    assert result.classification is Classification.FAILED
    assert "every tool call was refused" in result.reason
    assert "Write" in result.reason
    assert result.permission_denials == ("Write",)


def test_a_refusal_among_successful_tool_calls_is_still_a_success() -> None:
    run = feed(
        *lines("assistant_tool_use", "user_tool_result_ok"),
        write_tool_use(),
        *lines("user_tool_result_denied", "result_permission_denials"),
    )
    result = build_result(run, exited(0))
    assert result.classification is Classification.SUCCESS
    assert result.permission_denials == ("Write",)


def test_no_result_line_is_never_a_success() -> None:
    run = feed(*lines("system_init", "assistant_text"))
    for code in (0, 130, 143, -9, None):
        result = build_result(run, exited(code))
        assert result.classification is Classification.RETRYABLE_TRANSIENT, code
    assert build_result(run, exited(0)).reason.startswith("claude ended without a result line")


def test_no_result_after_messages_estimates_the_cost_and_flags_an_undercount() -> None:
    result = build_result(feed(*lines("system_init", "assistant_text")), exited(0))
    assert result.usage == Usage(input_tokens=100, output_tokens=1)
    assert result.cost_source is CostSource.ESTIMATE
    assert result.cost_usd == pytest.approx(100 * 5e-6 + 1 * 25e-6)  # claude-opus-* rates
    assert result.budget_undercount is not None
    assert result.result_event()["budget_undercount"] == result.budget_undercount


def test_other_exit_without_a_result_fails_with_stderr() -> None:
    stderr = "--dangerously-skip-permissions cannot be used with root/sudo privileges"
    result = build_result(ClaudeRun(), exited(1, stderr_tail=stderr))
    assert result.classification is Classification.FAILED
    assert result.reason == f"claude exited 1 without a result: {stderr}"


@pytest.mark.parametrize(
    "outcome",
    [exited(None, stalled=True), exited(None, timed_out=True), exited(130), exited(-15)],
)
def test_a_complete_result_decides_however_the_process_ended(outcome: RunOutcome) -> None:
    run = feed(*lines("system_init", "assistant_text", "result_success"))
    result = build_result(run, outcome, stall_timeout_s=5)
    assert result.classification is Classification.SUCCESS, result.reason
    assert result.cost_source is CostSource.PROVIDER and result.cost_usd > 0
    assert result.budget_undercount is None


@pytest.mark.parametrize(
    ("outcome", "classification", "reason"),
    [
        (exited(None, stalled=True), Classification.RETRYABLE_TRANSIENT, "stalled: no output"),
        (exited(None, timed_out=True), Classification.RETRYABLE_TRANSIENT, "timed out"),
        (exited(130), Classification.RETRYABLE_TRANSIENT, "interrupted (exit 130)"),
    ],
)
def test_without_a_result_line_the_runner_outcome_decides(
    outcome: RunOutcome, classification: Classification, reason: str
) -> None:
    result = build_result(feed(*lines("system_init", "assistant_text")), outcome,
                          stall_timeout_s=5)
    assert result.classification is classification
    assert reason in result.reason


@pytest.mark.parametrize(
    ("outcome", "classification", "reason"),
    [
        (exited(None, line_too_long=True), Classification.FAILED, "over 1 MB"),
        (exited(None, cancelled=True), Classification.FAILED, "cancelled"),
        (
            exited(None, spawn_error="FileNotFoundError: claude"),
            Classification.FAILED,
            "cannot start claude",
        ),
    ],
)
def test_runner_outcomes_decide_before_the_stream(
    outcome: RunOutcome, classification: Classification, reason: str
) -> None:
    run = feed(*lines("system_init", "assistant_text", "result_success"))
    result = build_result(run, outcome, stall_timeout_s=5)
    assert result.classification is classification
    assert reason in result.reason


def test_a_non_json_line_is_counted_and_reported_never_a_crash() -> None:
    stream = ClaudeStream()
    produced = [
        stream.feed_line(line)
        for line in ["npm WARN something", "[1, 2]", "{not json", *lines("result_success")]
    ]
    assert [e[0].data.get("subtype") for e in produced[:3]] == ["non_json_line"] * 3
    assert produced[0][0].data["line"] == "npm WARN something"
    assert stream.run.non_json_lines == 3
    assert build_result(stream.run, exited(0)).classification is Classification.SUCCESS


def test_zeroed_usage_after_a_non_streamed_retry_takes_tokens_from_model_usage() -> None:
    event = obj("result_success")
    event["usage"] = {k: 0 for k in event["usage"] if isinstance(event["usage"][k], int)}
    event["modelUsage"]["claude-opus-4-8[1m]"].update(
        inputTokens=555, outputTokens=66, cacheReadInputTokens=5
    )
    result = build_result(feed(json.dumps(event)), exited(0))
    assert result.usage == Usage(input_tokens=560, output_tokens=66, cached_tokens=5)


def test_a_model_claude_code_cannot_price_is_priced_from_the_rate_card() -> None:
    event = obj("result_success")
    event["modelUsage"] = {"gpt-5": event["modelUsage"]["claude-opus-4-8[1m]"]}
    result = build_result(feed(json.dumps(event)), exited(0))
    assert result.cost_source is CostSource.RATE_CARD
    assert result.cost_usd == pytest.approx(100 * 1.25e-6 + 20 * 10e-6)
    assert result.model == "gpt-5"
    assert result.budget_undercount is None


def test_an_unknown_model_keeps_claude_codes_figure_as_an_estimate_and_says_so() -> None:
    event = obj("result_success")
    event["modelUsage"] = {"mystery-1": event["modelUsage"]["claude-opus-4-8[1m]"]}
    result = build_result(feed(json.dumps(event)), exited(0), card=load_rate_card())
    assert (result.cost_usd, result.cost_source) == (0.001, CostSource.ESTIMATE)
    assert result.budget_undercount is not None and "mystery-1" in result.budget_undercount


def test_usage_normalizer_counts_cache_reads_and_writes_as_cached_input() -> None:
    usage = normalize_usage(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 900,
            "cache_creation_input_tokens": 50,
            "output_tokens": 7,
        }
    )
    assert usage == Usage(input_tokens=960, output_tokens=7, cached_tokens=950)
    assert usage.total == 967
