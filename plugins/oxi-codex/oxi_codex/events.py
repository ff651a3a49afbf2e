"""Codex's ``exec --json`` events -> canonical events -> a DispatchResult (T2-32, T2-34).

Pure functions and small accumulators, no I/O. :func:`to_canonical` maps one Codex event onto
the five canonical kinds:

=========================================  ==================================================
Codex                                      canonical
=========================================  ==================================================
``thread.started``, ``turn.started``       system (the thread id is the session id)
``item.*`` agent_message / reasoning       assistant (reasoning with ``reasoning: true``)
``item.started`` command_execution,        tool_use (shell / edit / mcp:SERVER.TOOL /
file_change, mcp_tool_call, web_search     web_search)
``item.completed`` of those                tool_result (a tool_use first when no
                                           ``item.started`` was seen)
``item.*`` todo_list, error, updates       system
``error``                                  system (``subtype: "error"``)
``turn.completed`` / ``turn.failed``       result (``usage`` / ``message``)
=========================================  ==================================================

:class:`CodexRun` folds canonical events (not Codex's own), so replaying a normalised stream
gives the same DispatchResult as the live run. ``turn.completed.usage`` is cumulative for the
whole thread: the last one wins, and a resumed thread's previous totals are subtracted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from oxi_codex.session_file import SessionSummary, ToolCallRecord
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

AGENT = "codex"
TEXT_LIMIT = 4000
ACTION_ITEMS = frozenset({"command_execution", "file_change", "mcp_tool_call"})
TOOL_ITEMS = ACTION_ITEMS | {"web_search"}
SIGNAL_EXITS = frozenset({130, 137, 143})

_S = CanonicalKind.SYSTEM
Verdict = tuple[Classification, str, dict[str, Any]]  # (classification, reason, extra fields)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def normalize_usage(raw: Mapping[str, Any]) -> Usage:
    """Codex usage -> Usage. Codex counts cached input inside input and reasoning inside
    output (``total_tokens`` = input + output); oxi keeps reasoning apart from output."""
    reasoning = _int(raw.get("reasoning_output_tokens"))
    inp = _int(raw.get("input_tokens"))
    return Usage(
        input_tokens=inp,
        output_tokens=max(0, _int(raw.get("output_tokens")) - reasoning),
        cached_tokens=min(_int(raw.get("cached_input_tokens")), inp),
        reasoning_tokens=reasoning,
    )




def tool_name(item: Mapping[str, Any]) -> str:
    """The canonical tool of an item: shell, edit, mcp:SERVER.TOOL, web_search."""
    kind = item.get("type")
    if kind == "command_execution":
        return "shell"
    if kind == "file_change":
        return "edit"
    if kind == "mcp_tool_call":
        return f"mcp:{item.get('server', '?')}.{item.get('tool', '?')}"
    return str(kind)


def _tool_input(item: Mapping[str, Any]) -> dict[str, Any]:
    kind = item.get("type")
    if kind == "command_execution":
        return {"command": item.get("command")}
    if kind == "file_change":
        return {"changes": item.get("changes") or []}
    if kind == "mcp_tool_call":
        return {"arguments": item.get("arguments")}
    if kind == "web_search":
        return {"query": item.get("query")}
    return {}


def item_failed(item: Mapping[str, Any]) -> bool:
    """A tool item that did not do what it was asked (failed, declined, non-zero exit)."""
    status = item.get("status")
    if status in ("failed", "declined", "rejected", "cancelled"):
        return True
    code = item.get("exit_code")
    if isinstance(code, int) and code != 0:
        return True
    return bool(item.get("error"))


_ASSISTANT = CanonicalKind.ASSISTANT
_TOOL_USE = CanonicalKind.TOOL_USE
_TOOL_RESULT = CanonicalKind.TOOL_RESULT
_RESULT = CanonicalKind.RESULT


def _item_events(phase: str, item: Mapping[str, Any], started: set[str]) -> list[CanonicalEvent]:
    kind = item.get("type")
    item_id = item.get("id")
    if type(item_id) is not str:
        item_id = "" if item_id is None else str(item_id)
    if kind == "agent_message" or kind == "reasoning":
        if phase != "completed":
            return [CanonicalEvent(_S, {"subtype": f"item.{phase}", "item_type": kind})]
        text = item.get("text", "")
        data: dict[str, Any] = {"id": item_id, "text": text if isinstance(text, str) else str(text)}
        if kind == "reasoning":
            data["reasoning"] = True
        return [CanonicalEvent(_ASSISTANT, data)]
    if kind in TOOL_ITEMS:
        if phase == "updated":
            return [
                CanonicalEvent(_S, {"subtype": "item.updated", "item_type": kind, "id": item_id})
            ]
        tool = tool_name(item)
        tool_input = _tool_input(item)
        if phase == "started":
            started.add(item_id)
            return [
                CanonicalEvent(
                    _TOOL_USE, {"id": item_id, "name": kind, "tool": tool, "input": tool_input}
                )
            ]
        out = []
        if item_id in started:
            started.discard(item_id)
        else:
            out.append(
                CanonicalEvent(
                    _TOOL_USE, {"id": item_id, "name": kind, "tool": tool, "input": tool_input}
                )
            )
        output = item.get("aggregated_output")
        if output is None and kind == "mcp_tool_call":
            output = item.get("error") or item.get("result")
        if not isinstance(output, str):
            output = "" if output is None else json.dumps(output)
        out.append(
            CanonicalEvent(
                _TOOL_RESULT,
                {
                    "id": item_id,
                    "name": kind,
                    "tool": tool,
                    "input": tool_input,
                    "is_error": item_failed(item),
                    "status": item.get("status"),
                    "exit_code": item.get("exit_code"),
                    "content": output[:TEXT_LIMIT],
                },
            )
        )
        return out
    if kind == "error":
        return [CanonicalEvent(_S, {"subtype": "warning", "message": str(item.get("message"))})]
    if kind == "todo_list":
        return [CanonicalEvent(_S, {"subtype": "todo_list", "items": item.get("items") or []})]
    return [CanonicalEvent(_S, {"subtype": f"item.{phase}", "item_type": kind})]


def _thread_started(obj: Mapping[str, Any], _started: set[str]) -> list[CanonicalEvent]:
    thread = obj.get("thread_id")
    thread = thread if isinstance(thread, str) else None
    return [CanonicalEvent(_S, {"subtype": "thread.started", "thread_id": thread}, thread)]


def _turn_started(_obj: Mapping[str, Any], _started: set[str]) -> list[CanonicalEvent]:
    return [CanonicalEvent(_S, {"subtype": "turn.started"})]


def _turn_completed(obj: Mapping[str, Any], _started: set[str]) -> list[CanonicalEvent]:
    usage = obj.get("usage")
    data = {
        "subtype": "turn.completed",
        "is_error": False,
        "usage": dict(usage) if type(usage) is dict or isinstance(usage, Mapping) else {},
    }
    return [CanonicalEvent(_RESULT, data)]


def _turn_failed(obj: Mapping[str, Any], _started: set[str]) -> list[CanonicalEvent]:
    error = obj.get("error")
    message = error.get("message") if isinstance(error, Mapping) else error
    data = {"subtype": "turn.failed", "is_error": True, "message": str(message or "")}
    return [CanonicalEvent(_RESULT, data)]


def _error(obj: Mapping[str, Any], _started: set[str]) -> list[CanonicalEvent]:
    return [CanonicalEvent(_S, {"subtype": "error", "message": str(obj.get("message", ""))})]


def _unknown(obj: Mapping[str, Any], _started: set[str]) -> list[CanonicalEvent]:
    return [CanonicalEvent(_S, {"subtype": f"unknown:{obj.get('type')}", "raw": dict(obj)})]


_HANDLERS: dict[Any, Callable[[Mapping[str, Any], set[str]], list[CanonicalEvent]]] = {
    "thread.started": _thread_started,
    "turn.started": _turn_started,
    "turn.completed": _turn_completed,
    "turn.failed": _turn_failed,
    "error": _error,
}
_ITEM_PHASES: dict[Any, str] = {
    "item.started": "started",
    "item.updated": "updated",
    "item.completed": "completed",
}


def to_canonical(obj: Mapping[str, Any], started: set[str] | None = None) -> list[CanonicalEvent]:
    """One Codex event -> its canonical events. ``started`` holds the ids of tool items whose
    ``item.started`` has been seen (so a completed item gets its tool_use exactly once)."""
    if started is None:
        started = set()
    kind = obj.get("type")
    phase = _ITEM_PHASES.get(kind)  # items are most of a stream: no handler call for them
    if phase is not None:
        item = obj.get("item")
        if type(item) is dict or isinstance(item, Mapping):  # dict first: abc checks are slow
            return _item_events(phase, item, started)
        return _unknown(obj, started)
    return _HANDLERS.get(kind, _unknown)(obj, started)


@attrs.define
class CodexRun:
    """What a run's canonical events said."""

    thread_id: str | None = None
    turn_started: bool = False
    usage_raw: Mapping[str, Any] | None = None  # the last turn.completed usage: cumulative
    completed_turns: int = 0
    failure: str | None = None  # turn.failed's message
    errors: list[str] = attrs.field(factory=list)  # top-level `error` events
    warnings: list[str] = attrs.field(factory=list)  # non-fatal `error` items
    final_text: str = ""
    messages: int = 0
    tool_steps: int = 0  # completed action items: each needed one model response
    actions: list[ToolCallRecord] = attrs.field(factory=list)
    non_json_lines: int = 0
    events: int = 0

    @property
    def turns(self) -> int:
        """Model responses: one per tool step, plus the final answer."""
        answered = self.messages > 0 or self.completed_turns > 0
        return self.tool_steps + (1 if answered else 0)

    def feed(self, event: CanonicalEvent) -> None:
        self.events += 1
        data = event.data
        kind = event.kind
        if kind is _S:
            subtype = data.get("subtype")
            if subtype == "thread.started":
                self.thread_id = data.get("thread_id") or self.thread_id
            elif subtype == "turn.started":
                self.turn_started = True
            elif subtype == "error":
                self.errors.append(str(data.get("message", "")))
            elif subtype == "warning":
                self.warnings.append(str(data.get("message", "")))
            elif subtype == "non_json_line":
                self.non_json_lines += 1
        elif kind is _ASSISTANT:
            if not data.get("reasoning"):
                self.messages += 1
                self.final_text = str(data.get("text", ""))
        elif kind is _TOOL_RESULT:
            name = str(data.get("name", ""))
            if name in ACTION_ITEMS:
                self.tool_steps += 1
                self.actions.append(
                    ToolCallRecord(
                        name=str(data.get("tool", name)),
                        ok=not data.get("is_error"),
                        detail=_describe_action(data),
                    )
                )
        elif kind is _RESULT:
            if data.get("subtype") == "turn.completed":
                self.completed_turns += 1
                usage = data.get("usage")
                self.usage_raw = usage if isinstance(usage, Mapping) else {}
            else:
                self.failure = str(data.get("message", "")) or "turn failed"


def _describe_action(data: Mapping[str, Any]) -> str:
    inp = data.get("input") or {}
    what = inp.get("command") if isinstance(inp, Mapping) else None
    if not what and isinstance(inp, Mapping) and inp.get("changes"):
        what = ", ".join(str(c.get("path")) for c in inp["changes"] if isinstance(c, Mapping))
    code = data.get("exit_code")
    status = data.get("status")
    return f"{what or data.get('tool')} ({'exit ' + str(code) if code is not None else status})"


@attrs.define
class CodexStream:
    """stdout lines -> canonical events, folded into ``run`` as they pass."""

    run: CodexRun = attrs.field(factory=CodexRun)
    started: set[str] = attrs.field(factory=set)

    def feed_line(self, line: str) -> list[CanonicalEvent]:
        obj = parse_line(line)
        if obj is None:
            events = [CanonicalEvent(_S, {"subtype": "non_json_line", "line": line[:200]})]
        else:
            events = to_canonical(obj, self.started)
        for event in events:
            self.run.feed(event)
        return events

    def feed_lines(self, lines: Iterable[str]) -> CodexRun:
        for line in lines:
            self.feed_line(line)
        return self.run


def replay(events: Iterable[CanonicalEvent]) -> CodexRun:
    """Fold already-normalised canonical events (a recording) into a CodexRun."""
    run = CodexRun()
    for event in events:
        run.feed(event)
    return run


# -- classification and the result -----------------------------------------------------------

_RETRY_IN = re.compile(
    r"(?:try again|retry|retrying)\s+(?:in|after)\s+(\d+(?:\.\d+)?)\s*(ms|s|sec|seconds?)?",
    re.IGNORECASE,
)
_STATUS = re.compile(r"status:?\s*(\d{3})\b", re.IGNORECASE)
_TRANSIENT_TEXT = re.compile(
    r"high demand|stream disconnected|transport error|network error|connection (?:reset|refused|"
    r"closed|error)|timed out|temporarily|overloaded|service unavailable|bad gateway",
    re.IGNORECASE,
)
_RATE_TEXT = re.compile(r"too many requests|rate.?limit|exceeded retry limit", re.IGNORECASE)
_AUTH_TEXT = re.compile(
    r"unauthori[sz]ed|forbidden|invalid api key|incorrect api key", re.IGNORECASE
)


def retry_delay_s(message: str) -> float | None:
    """A retry delay the message states ("try again in 2.5s"), if any."""
    found = _RETRY_IN.search(message)
    if not found:
        return None
    value = float(found.group(1))
    return value / 1000 if (found.group(2) or "").lower() == "ms" else value


def classify_failure(message: str) -> Verdict:
    """A turn.failed / error message -> (classification, reason, extra result fields).

    The HTTP status in the message decides first ("unexpected status 401 Unauthorized",
    "exceeded retry limit, last status: 429 Too Many Requests"), then the wording.
    """
    C = Classification
    text = message.strip()[:400] or "turn failed without a message"
    lowered = text.lower()
    statuses = {int(code) for code in _STATUS.findall(text)}
    rate: dict[str, Any] = {"rate_limit_exhausted": True, "retry_after_s": retry_delay_s(text),
                            "failure_kind": K.RATE_LIMITED}
    # Every task would be refused the same way: a setup error, not a failed task.
    auth: Verdict = (C.SETUP_ERROR, f"credentials rejected: {text}", failure_extra(K.CREDENTIALS))
    transient: Verdict = (
        C.RETRYABLE_TRANSIENT,
        f"model server error: {text}",
        {"retry_after_s": retry_delay_s(text),
         "failure_kind": (K.OVERLOADED if 529 in statuses or "overload" in lowered
                          else K.SERVER_ERROR)},
    )
    if "idle timeout" in lowered:
        return C.RETRYABLE_TRANSIENT, f"stalled: {text}", failure_extra(K.STALLED)
    if 429 in statuses:
        return C.RETRYABLE_TRANSIENT, f"rate limited: {text}", rate
    if statuses & {401, 403}:
        return auth
    if any(500 <= code <= 599 for code in statuses):
        return transient
    if _RATE_TEXT.search(text) and not statuses:
        return C.RETRYABLE_TRANSIENT, f"rate limited: {text}", rate
    if _AUTH_TEXT.search(text):
        return auth
    if _TRANSIENT_TEXT.search(text):
        return transient
    return C.FAILED, f"codex turn failed: {text}", failure_extra(K.AGENT_ERROR)


def _stderr_line(outcome: RunOutcome) -> str:
    lines = [
        line
        for line in outcome.stderr_tail.strip().splitlines()
        if line.strip() and not line.startswith("Reading additional input from stdin")
    ]
    return lines[-1][:300] if lines else "no stderr"


def choose_actions(run: CodexRun, session: SessionSummary | None) -> list[ToolCallRecord]:
    """The run's tool calls: the session file's when it knows more (refused calls never show
    up as items in the JSON stream, only in the session file)."""
    if session is not None and len(session.tool_calls) >= len(run.actions):
        return list(session.tool_calls)
    return list(run.actions)


def classify(
    run: CodexRun,
    outcome: RunOutcome,
    *,
    actions: list[ToolCallRecord] | None = None,
    sandboxed: bool = True,
    max_turns: int | None = None,
    turn_cap_hit: bool = False,
    stall_timeout_s: float = 0.0,
    timeout_s: float = 0.0,
) -> Verdict:
    """(classification, reason, extra DispatchResult fields) for a finished run.

    A finished turn (``turn.completed`` or ``turn.failed``) decides over how the process ended:
    codex hanging after its last line until the stall or wall-clock timeout did its work.
    """
    C = Classification
    if outcome.spawn_error:
        return C.FAILED, f"cannot start codex: {outcome.spawn_error}", failure_extra(K.SETUP_ERROR)
    if outcome.line_too_long:
        return (C.FAILED, "codex printed a line over 1 MB; the run was stopped",
                failure_extra(K.AGENT_ERROR))
    if turn_cap_hit or (max_turns and run.turns > max_turns):
        return (
            C.FAILED,
            (
                f"max turns reached: {run.turns} model turns for a limit of {max_turns} (codex has "
                "no turn limit of its own; oxi counts tool steps and stops it)"
            ),
            failure_extra(K.AGENT_ERROR),
        )
    if outcome.cancelled:
        return C.FAILED, "cancelled", failure_extra(K.CANCELLED)
    if run.failure is not None:
        return classify_failure(run.failure)
    if run.completed_turns:
        done = actions if actions is not None else run.actions
        if sandboxed and done and not any(action.ok for action in done):
            listed = "; ".join(action.detail for action in done[:5])
            return (C.FAILED, f"every tool call was refused by the sandbox or failed: {listed}",
                    failure_extra(K.AGENT_ERROR))
        return C.SUCCESS, "", {}
    if outcome.stalled:
        return (C.RETRYABLE_TRANSIENT, outcome.stall_reason(stall_timeout_s),
                failure_extra(K.STALLED))
    if outcome.timed_out:
        return (C.RETRYABLE_TRANSIENT, f"timed out after {timeout_s:g} s",
                failure_extra(K.AGENT_TIMEOUT))
    code = outcome.exit_code
    if code == 130:
        return C.RETRYABLE_TRANSIENT, "interrupted (exit 130)", failure_extra(K.INTERRUPTED)
    if code != 0 and run.errors:
        return classify_failure(run.errors[-1])
    if code is None or code < 0 or code in SIGNAL_EXITS:
        return (C.RETRYABLE_TRANSIENT, f"codex was killed (exit {code}) before its turn ended",
                failure_extra(K.INTERRUPTED))
    if code == 0:
        return (C.RETRYABLE_TRANSIENT, "codex exited 0 without turn.completed (interrupted?)",
                failure_extra(K.INTERRUPTED))
    return C.FAILED, f"codex exited {code}: {_stderr_line(outcome)}", failure_extra(K.AGENT_ERROR)


def run_usage(
    run: CodexRun, *, baseline: Usage | None = None, session: SessionSummary | None = None
) -> tuple[Usage, Usage | None, str | None]:
    """(this run's usage, the thread's cumulative usage if known, why it may be too low).

    Cumulative totals win over deltas: the last turn.completed (or the session file's last
    token_count) is the thread's total, and a resumed thread's previous total is subtracted.
    """
    why: str | None = None
    raw: Mapping[str, Any] | None = run.usage_raw
    if raw is None and session is not None and session.total is not None:
        raw = session.total
    if raw is None:
        if run.tool_steps or run.messages:
            why = (
                "codex reported no token usage (no turn.completed and no token_count in "
                "its session file): the model's tokens are not counted"
            )
        return Usage(), None, why
    cumulative = normalize_usage(raw)
    if "reasoning_output_tokens" not in raw:
        reasoning = session.reasoning_tokens if session is not None else None
        if reasoning is None:
            why = (
                "reasoning tokens missing from turn.completed and from the session file: "
                "the cost leaves them out"
            )
        else:
            cumulative = attrs.evolve(
                cumulative,
                reasoning_tokens=reasoning,
                output_tokens=max(0, cumulative.output_tokens - reasoning),
            )
    usage = cumulative - baseline if baseline is not None else cumulative
    return usage, cumulative, why


def build_result(
    run: CodexRun,
    outcome: RunOutcome,
    *,
    model: str | None,
    baseline: Usage | None = None,
    session: SessionSummary | None = None,
    sandboxed: bool = True,
    max_turns: int | None = None,
    turn_cap_hit: bool = False,
    stall_timeout_s: float = 0.0,
    timeout_s: float = 0.0,
    card: RateCard | None = None,
) -> DispatchResult:
    """The DispatchResult for a finished run (pure: the session summary and the rate card are
    passed in)."""
    card = card or load_rate_card()
    classification, reason, extra = classify(
        run,
        outcome,
        actions=choose_actions(run, session),
        sandboxed=sandboxed,
        max_turns=max_turns,
        turn_cap_hit=turn_cap_hit,
        stall_timeout_s=stall_timeout_s,
        timeout_s=timeout_s,
    )
    usage, _, undercount = run_usage(run, baseline=baseline, session=session)
    cost = card.cost_usd(model, usage)
    source = CostSource.RATE_CARD
    if cost is None:
        cost, source = 0.0, CostSource.NONE
        if usage.total:
            missing = f"model {model!r} is not in the rate card: the run's cost is unknown"
            undercount = f"{undercount}; {missing}" if undercount else missing
    elif usage.total == 0:
        source = CostSource.NONE
    return DispatchResult(
        classification,
        reason,
        cost_usd=cost,
        cost_source=source,
        usage=usage,
        turns=run.turns,
        session_id=run.thread_id,
        duration_s=outcome.duration_s,
        final_text=run.final_text[-TEXT_LIMIT:],
        exit_code=outcome.exit_code,
        model=model,
        agent=AGENT,
        budget_undercount=undercount,
        **extra,
    )
