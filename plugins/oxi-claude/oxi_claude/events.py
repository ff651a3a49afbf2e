"""Claude Code's ``--output-format stream-json`` -> canonical events -> a DispatchResult.

Pure functions and a small accumulator, no I/O: :class:`ClaudeStream` turns stdout lines into
:class:`CanonicalEvent` s and folds them into a :class:`ClaudeRun`; :func:`build_result` turns
the run and the runner's :class:`RunOutcome` into the DispatchResult.

Facts this relies on (``docs/scripted-model-servers.md``, "Observed behaviour"):
- API failures end with ``subtype: "success"`` and ``is_error: true``; classify on
  ``is_error`` and ``api_error_status``, never on ``subtype``.
- SIGINT ends the CLI with exit 0 and no ``result`` line: no result is never a success.
- After a broken stream is retried without streaming, ``result.usage`` is all zeros while
  ``modelUsage`` is right.
- ``total_cost_usd`` is Claude Code's own price table: right for Anthropic's models only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

import attrs

from oxi_core.agentic.jsonlines import parse_line
from oxi_core.agentic.rates import RateCard, load_rate_card
from oxi_core.agentic.runner import RunOutcome
from oxi_core.agentic.types import (
    CanonicalEvent,
    CanonicalKind,
    CostSource,
    DispatchResult,
    Usage,
    failure_extra,
)
from oxi_core.models import Classification
from oxi_core.models import FailureKind as K

AGENT = "claude"
STREAM_EVENT_PREFIX = '{"type":"stream_event"'
# The stream events that carry usage. Until a content block completes they are the only place
# a run shows what it spent: a run that stalls before then prints no assistant line at all.
USAGE_EVENT_PREFIXES = (
    '{"type":"stream_event","event":{"type":"message_start"',
    '{"type":"stream_event","event":{"type":"message_delta"',
)
TOOL_NAMES: Mapping[str, str] = {
    "Write": "write",
    "Edit": "edit",
    "MultiEdit": "edit",
    "NotebookEdit": "edit",
    "Bash": "shell",
    "Read": "read",
}
SIGNAL_EXITS = frozenset({0, 130, 137, 143})  # no result line after these: killed, not failed
TEXT_LIMIT = 4000

# Shared, so the adapter can throttle it by identity: live token deltas (stream_event lines,
# --include-partial-messages) that only show the agent is alive.
PROGRESS = CanonicalEvent(CanonicalKind.SYSTEM, {"subtype": "stream_progress"})

_CONNECTION_TEXT = re.compile(
    r"unable to connect|econnreset|econnrefused|etimedout|socket hang up|connection error|"
    r"network error|fetch failed|request timed out",
    re.IGNORECASE,
)


def translate_tool(name: str) -> str:
    """Claude Code's tool name -> oxi's canonical one (write, edit, shell, read, else lower)."""
    return TOOL_NAMES.get(name, name.lower())


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def normalize_usage(raw: Mapping[str, Any]) -> Usage:
    """An Anthropic ``usage`` object -> Usage. Input counts cache reads and writes too."""
    cached = _int(raw.get("cache_read_input_tokens")) + _int(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=_int(raw.get("input_tokens")) + cached,
        output_tokens=_int(raw.get("output_tokens")),
        cached_tokens=cached,
    )


def model_usage_tokens(entry: Mapping[str, Any]) -> Usage:
    """One ``modelUsage`` entry (camelCase) -> Usage."""
    cached = _int(entry.get("cacheReadInputTokens")) + _int(entry.get("cacheCreationInputTokens"))
    return Usage(
        input_tokens=_int(entry.get("inputTokens")) + cached,
        output_tokens=_int(entry.get("outputTokens")),
        cached_tokens=cached,
    )


def base_model(name: str | None) -> str | None:
    """``claude-opus-4-8[1m]`` -> ``claude-opus-4-8``."""
    if not name:
        return None
    return re.sub(r"\[[^\]]*\]$", "", name.strip()) or None


def is_first_party(model: str | None) -> bool:
    """An Anthropic model, which Claude Code's own price table prices right."""
    name = base_model(model)
    return name is not None and name.lower().startswith("claude-")




def _is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)  # dict first: abc checks are slow


_SYSTEM = CanonicalKind.SYSTEM
_ASSISTANT = CanonicalKind.ASSISTANT
_TOOL_USE = CanonicalKind.TOOL_USE
_TOOL_RESULT = CanonicalKind.TOOL_RESULT
_RESULT = CanonicalKind.RESULT


def to_canonical(obj: Mapping[str, Any], translate: Any = translate_tool) -> list[CanonicalEvent]:
    """One stream-json object -> its canonical events (an assistant message: one per block)."""
    kind = obj.get("type")
    session = obj.get("session_id")
    if type(session) is not str:
        session = None
    if kind == "assistant":
        message = obj.get("message")
        if not _is_map(message):
            return []
        common: dict[str, Any] = {
            "message_id": message.get("id"),
            "model": message.get("model"),
            "usage": message.get("usage") if _is_map(message.get("usage")) else {},
        }
        if obj.get("error"):
            common["error"] = obj.get("error")
        out: list[CanonicalEvent] = []
        for block in message.get("content") or ():
            if not _is_map(block):
                continue
            btype = block.get("type")
            if btype == "tool_use":
                name = str(block.get("name", ""))
                out.append(
                    CanonicalEvent(
                        _TOOL_USE,
                        {
                            **common,
                            "id": block.get("id"),
                            "name": name,
                            "tool": translate(name),
                            "input": block.get("input") or {},
                        },
                        session,
                    )
                )
            elif btype == "text":
                out.append(
                    CanonicalEvent(
                        _ASSISTANT,
                        {**common, "text": str(block.get("text", ""))},
                        session,
                    )
                )
            elif btype in ("thinking", "redacted_thinking"):
                out.append(
                    CanonicalEvent(
                        _ASSISTANT,
                        {
                            **common,
                            "text": str(block.get("thinking", "")),
                            "reasoning": True,
                        },
                        session,
                    )
                )
        if not out:  # a message with no block we know still shows progress and usage
            out.append(CanonicalEvent(_ASSISTANT, {**common, "text": ""}, session))
        return out
    if kind == "user":
        message = obj.get("message")
        content = message.get("content") if _is_map(message) else None
        out = []
        for block in content if isinstance(content, list) else ():
            if _is_map(block) and block.get("type") == "tool_result":
                text = block.get("content")
                if not isinstance(text, str):
                    text = json.dumps(text)[:TEXT_LIMIT]
                out.append(
                    CanonicalEvent(
                        _TOOL_RESULT,
                        {
                            "tool_use_id": block.get("tool_use_id"),
                            "is_error": bool(block.get("is_error", False)),
                            "content": text[:TEXT_LIMIT],
                        },
                        session,
                    )
                )
        return out
    if kind == "result":
        return [CanonicalEvent(_RESULT, obj, session)]
    if kind == "stream_event":
        return [PROGRESS]
    if kind == "system":
        return [CanonicalEvent(_SYSTEM, obj, session)]
    return [CanonicalEvent(_SYSTEM, {"subtype": f"unknown:{kind}", "raw": obj}, session)]


@attrs.define
class ClaudeRun:
    """What the stream said, folded from canonical events (order matters only for texts)."""

    session_id: str | None = None
    model: str | None = None
    version: str | None = None
    result: Mapping[str, Any] | None = None
    tool_uses: dict[str, str] = attrs.field(factory=dict)  # tool_use id -> tool name
    failed_tools: dict[str, str] = attrs.field(factory=dict)  # tool_use id -> error text
    message_usage: dict[str, Usage] = attrs.field(factory=dict)  # message id -> usage
    last_text: str = ""
    retry_delay_s: float | None = None
    retries: int = 0
    non_json_lines: int = 0
    events: int = 0
    streaming_message: str | None = None  # the message the last message_start opened

    def note_usage(self, message_id: Any, usage: Any) -> None:
        """Usage reported for a message (its stream events and its assistant lines repeat
        it as it grows): the largest count of each kind is the message's."""
        if not isinstance(message_id, str) or not isinstance(usage, Mapping):
            return
        seen = self.message_usage.get(message_id, Usage())
        now = normalize_usage(usage)
        self.message_usage[message_id] = Usage(
            max(seen.input_tokens, now.input_tokens),
            max(seen.output_tokens, now.output_tokens),
            max(seen.cached_tokens, now.cached_tokens),
        )

    def feed_stream_usage(self, obj: Mapping[str, Any] | None) -> None:
        """A message_start or message_delta stream event: the usage seen so far."""
        event = obj.get("event") if obj is not None else None
        if not _is_map(event):
            return
        if event.get("type") == "message_start":
            message = event.get("message")
            if not _is_map(message):
                return
            self.streaming_message = message.get("id") if isinstance(
                message.get("id"), str) else None
            model = message.get("model")
            if isinstance(model, str) and model != "<synthetic>" and not self.model:
                self.model = model
            self.note_usage(self.streaming_message, message.get("usage"))
        else:  # message_delta: the usage so far of the message being streamed
            self.note_usage(self.streaming_message, event.get("usage"))

    def feed(self, event: CanonicalEvent) -> None:
        self.events += 1
        data = event.data
        if event.session_id and not self.session_id:
            self.session_id = event.session_id
        if event.kind is CanonicalKind.SYSTEM:
            subtype = data.get("subtype")
            if subtype == "init":
                self.model = data.get("model") or self.model
                self.version = data.get("claude_code_version") or self.version
                self.session_id = data.get("session_id") or self.session_id
            elif subtype == "api_retry":
                self.retries += 1
                delay = data.get("retry_delay_ms")
                if isinstance(delay, int | float) and not isinstance(delay, bool):
                    self.retry_delay_s = round(float(delay) / 1000, 3)
            elif subtype == "non_json_line":
                self.non_json_lines += 1
        elif event.kind in (CanonicalKind.ASSISTANT, CanonicalKind.TOOL_USE):
            self.note_usage(data.get("message_id"), data.get("usage"))
            model = data.get("model")
            if isinstance(model, str) and model != "<synthetic>" and not self.model:
                self.model = model
            if event.kind is CanonicalKind.TOOL_USE:
                self.tool_uses[str(data.get("id"))] = str(data.get("name", ""))
            elif not data.get("reasoning") and data.get("text"):
                self.last_text = str(data["text"])
        elif event.kind is CanonicalKind.TOOL_RESULT:
            if data.get("is_error"):
                self.failed_tools[str(data.get("tool_use_id"))] = str(data.get("content", ""))
        elif event.kind is CanonicalKind.RESULT:
            self.result = data
            if isinstance(data.get("session_id"), str):
                self.session_id = data["session_id"]


@attrs.define
class ClaudeStream:
    """stdout lines -> canonical events, folded into ``run`` as they pass."""

    translate: Any = translate_tool
    run: ClaudeRun = attrs.field(factory=ClaudeRun)

    def feed_line(self, line: str) -> list[CanonicalEvent]:
        if line.startswith(STREAM_EVENT_PREFIX):  # the bulk of the stream: no need to decode
            if line.startswith(USAGE_EVENT_PREFIXES):  # two a message: decoded for the usage
                self.run.feed_stream_usage(parse_line(line))
            return [PROGRESS]
        obj = parse_line(line)
        if obj is None:
            event = CanonicalEvent(
                CanonicalKind.SYSTEM, {"subtype": "non_json_line", "line": line[:200]}
            )
            self.run.feed(event)
            return [event]
        events = to_canonical(obj, self.translate)
        for event in events:
            if event is not PROGRESS:
                self.run.feed(event)
        return events

    def feed_lines(self, lines: Iterable[str]) -> ClaudeRun:
        for line in lines:
            self.feed_line(line)
        return self.run


# -- the result ----------------------------------------------------------------------------


def _run_usage(run: ClaudeRun) -> tuple[Usage, bool]:
    """Tokens of the run, and whether they are only an estimate (no result line)."""
    result = run.result
    if result is None:
        total = Usage()
        for usage in run.message_usage.values():
            total = total + usage
        return total, True
    raw = result.get("usage")
    usage = normalize_usage(raw) if isinstance(raw, Mapping) else Usage()
    model_usage = result.get("modelUsage")
    if usage.total == 0 and isinstance(model_usage, Mapping) and model_usage:
        # the non-streamed retry zeroes result.usage; modelUsage keeps the real counts
        for entry in model_usage.values():
            if isinstance(entry, Mapping):
                usage = usage + model_usage_tokens(entry)
    return usage, False


def _primary_model(run: ClaudeRun, requested: str | None) -> str | None:
    result = run.result or {}
    model_usage = result.get("modelUsage")
    if isinstance(model_usage, Mapping) and model_usage:
        best = max(
            model_usage.items(),
            key=lambda item: (
                _int(item[1].get("outputTokens")) if isinstance(item[1], Mapping) else 0
            ),
        )
        return base_model(best[0])
    return base_model(run.model) or requested


def _cost(
    run: ClaudeRun, usage: Usage, model: str | None, estimated: bool, card: RateCard
) -> tuple[float, CostSource, str | None]:
    """(cost, where it came from, why it may be too low or None)."""
    result = run.result
    if result is None or estimated:
        if usage.total == 0 and not run.message_usage:
            return 0.0, CostSource.NONE, None
        price = card.cost_usd(model, usage)
        why = (
            "the run ended without a result line: tokens are summed from the messages seen "
            "(their stream events included), and the last message may have been cut short"
        )
        if price is None:
            return 0.0, CostSource.NONE, f"{why}; model {model!r} is not in the rate card"
        return price, CostSource.ESTIMATE, why
    provider = result.get("total_cost_usd")
    provider_cost = float(provider) if isinstance(provider, int | float) else 0.0
    model_usage = result.get("modelUsage")
    entries = (
        {name: entry for name, entry in model_usage.items() if isinstance(entry, Mapping)}
        if isinstance(model_usage, Mapping)
        else {}
    )
    names = list(entries) or [model]
    if all(is_first_party(name) for name in names):
        return provider_cost, CostSource.PROVIDER, None
    if not entries:
        price = card.cost_usd(model, usage)
        if price is not None:
            return price, CostSource.RATE_CARD, None
        return (
            provider_cost,
            CostSource.ESTIMATE,
            (f"model {model!r} is not in the rate card; Claude Code's own figure is used"),
        )
    total = 0.0
    for name, entry in entries.items():
        price = card.cost_usd(name, model_usage_tokens(entry))
        if price is None:
            return (
                provider_cost,
                CostSource.ESTIMATE,
                (f"model {name!r} is not in the rate card; Claude Code's own figure is used"),
            )
        total += price
    return round(total, 8), CostSource.RATE_CARD, None


def _denied_tools(run: ClaudeRun) -> tuple[list[str], list[str]]:
    """(ids, names) of the tool calls the CLI refused, from result.permission_denials."""
    denials = (run.result or {}).get("permission_denials")
    ids: list[str] = []
    names: list[str] = []
    for denial in denials if isinstance(denials, list) else ():
        if isinstance(denial, Mapping):
            ids.append(str(denial.get("tool_use_id")))
            names.append(str(denial.get("tool_name", "?")))
    return ids, names


def _stderr_line(outcome: RunOutcome) -> str:
    lines = [line for line in outcome.stderr_tail.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no stderr"


def classify(
    run: ClaudeRun, outcome: RunOutcome, *, stall_timeout_s: float = 0.0, timeout_s: float = 0.0
) -> tuple[Classification, str, dict[str, Any]]:
    """(classification, reason, extra DispatchResult fields) for a finished run.

    A complete ``result`` line decides over how the process ended: a CLI that printed its
    whole result and then hung until the stall or wall-clock timeout did its work (and was
    paid for). Only a spawn failure, an over-long line and cancellation come first.
    """
    C = Classification
    if outcome.spawn_error:
        return C.FAILED, f"cannot start claude: {outcome.spawn_error}", failure_extra(K.SETUP_ERROR)
    if outcome.line_too_long:
        return (C.FAILED, "claude printed a line over 1 MB; the run was stopped",
                failure_extra(K.AGENT_ERROR))
    if outcome.cancelled:
        return C.FAILED, "cancelled", failure_extra(K.CANCELLED)
    result = run.result
    if result is None and outcome.stalled:
        return (C.RETRYABLE_TRANSIENT, outcome.stall_reason(stall_timeout_s),
                failure_extra(K.STALLED))
    if result is None and outcome.timed_out:
        return (C.RETRYABLE_TRANSIENT, f"timed out after {timeout_s:g} s",
                failure_extra(K.AGENT_TIMEOUT))
    if result is None and outcome.exit_code == 130:
        return C.RETRYABLE_TRANSIENT, "interrupted (exit 130)", failure_extra(K.INTERRUPTED)
    if result is None:
        code = outcome.exit_code
        if code is None or code < 0 or code in SIGNAL_EXITS:
            return (
                C.RETRYABLE_TRANSIENT,
                (f"claude ended without a result line (exit {code}): killed or interrupted"),
                failure_extra(K.INTERRUPTED),
            )
        return (C.FAILED, f"claude exited {code} without a result: {_stderr_line(outcome)}",
                failure_extra(K.AGENT_ERROR))
    text = result.get("result") if isinstance(result.get("result"), str) else ""
    if result.get("is_error"):
        status = result.get("api_error_status")
        status = status if isinstance(status, int) and not isinstance(status, bool) else None
        detail = (text or "; ".join(map(str, result.get("errors") or ())) or "no detail")[:300]
        if status == 429:
            return (
                C.RETRYABLE_TRANSIENT,
                f"rate limited (HTTP 429): {detail}",
                {"rate_limit_exhausted": True, "retry_after_s": run.retry_delay_s,
                 "failure_kind": K.RATE_LIMITED},
            )
        if status is not None and (status >= 500 or status == 529 or status == 408):
            return (
                C.RETRYABLE_TRANSIENT,
                f"model server error (HTTP {status}): {detail}",
                {"retry_after_s": run.retry_delay_s, "failure_kind": (
                    K.TIMEOUT if status == 408 else K.OVERLOADED
                    if status == 529 or "overload" in detail.lower() else K.SERVER_ERROR)},
            )
        if status in (401, 403):
            # Every task would be refused the same way: a setup error, not a failed task.
            return (C.SETUP_ERROR, f"credentials rejected (HTTP {status}): {detail}",
                    failure_extra(K.CREDENTIALS))
        if status is not None:
            return (C.FAILED, f"model API error (HTTP {status}): {detail}",
                    failure_extra(K.BAD_REQUEST))
        subtype = result.get("subtype")
        if subtype == "error_max_turns":
            return C.FAILED, f"max turns reached ({detail})", failure_extra(K.AGENT_ERROR)
        if subtype == "error_max_budget_usd":
            return C.FAILED, f"max cost reached ({detail})", failure_extra(K.BUDGET)
        if _CONNECTION_TEXT.search(detail):
            return (C.RETRYABLE_TRANSIENT, f"connection to the model API failed: {detail}",
                    failure_extra(K.CONNECTION))
        return (C.FAILED, f"claude reported an error ({subtype}): {detail}",
                failure_extra(K.AGENT_ERROR))
    denied_ids, denied_names = _denied_tools(run)
    if run.tool_uses and set(run.tool_uses) <= set(denied_ids):
        names = ", ".join(dict.fromkeys(denied_names))
        return (
            C.FAILED,
            (
                f"every tool call was refused by the permission mode: {names}; allow them with "
                "kwargs.allowed_tools or kwargs.permission_mode"
            ),
            failure_extra(K.AGENT_ERROR),
        )
    return C.SUCCESS, "", {}


def build_result(
    run: ClaudeRun,
    outcome: RunOutcome,
    *,
    requested_model: str | None = None,
    stall_timeout_s: float = 0.0,
    timeout_s: float = 0.0,
    card: RateCard | None = None,
) -> DispatchResult:
    """The DispatchResult for a finished run (pure: the rate card is data)."""
    card = card or load_rate_card()
    classification, reason, extra = classify(
        run, outcome, stall_timeout_s=stall_timeout_s, timeout_s=timeout_s
    )
    usage, estimated = _run_usage(run)
    model = _primary_model(run, requested_model)
    cost, source, undercount = _cost(run, usage, model, estimated, card)
    result = run.result or {}
    text = result.get("result")
    turns = result.get("num_turns")
    _, denied_names = _denied_tools(run)
    return DispatchResult(
        classification,
        reason,
        cost_usd=cost,
        cost_source=source,
        usage=usage,
        turns=turns if isinstance(turns, int) else len(run.message_usage),
        session_id=run.session_id,
        duration_s=outcome.duration_s,
        final_text=(text if isinstance(text, str) else run.last_text)[-TEXT_LIMIT:],
        permission_denials=tuple(denied_names),
        exit_code=outcome.exit_code,
        model=model,
        agent=AGENT,
        budget_undercount=undercount,
        **extra,
    )
