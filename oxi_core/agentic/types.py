"""The values every agent adapter produces: canonical events, usage and DispatchResult."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core.models import Classification, FailureKind

if TYPE_CHECKING:
    import asyncio


class CanonicalKind(enum.StrEnum):
    """The five event kinds every adapter maps its CLI's stream onto."""

    SYSTEM = "system"
    ASSISTANT = "assistant"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    RESULT = "result"


@attrs.frozen
class CanonicalEvent:
    kind: CanonicalKind
    data: Mapping[str, Any] = attrs.field(factory=dict)
    session_id: str | None = None


EventCallback = Callable[[CanonicalEvent], None]


@attrs.frozen
class Usage:
    """Token counts for one run. Adapters report totals for the run, never per-turn deltas."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.reasoning_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            max(0, self.input_tokens - other.input_tokens),
            max(0, self.output_tokens - other.output_tokens),
            max(0, self.cached_tokens - other.cached_tokens),
            max(0, self.reasoning_tokens - other.reasoning_tokens),
        )


@attrs.frozen
class DispatchRequest:
    """What the engine asks an agent to do: one prompt, in one worktree, within limits."""

    task_id: str
    prompt: str
    worktree: Path
    model: str | None = None
    max_turns: int | None = None
    max_cost_usd: float | None = None
    timeout_s: float = 3600.0
    stall_timeout_s: float = 300.0
    # Silence allowed before the CLI's first line (it is still starting), instead of the stall
    # timeout: many CLIs starting at once on a small host take long to say anything.
    startup_timeout_s: float = 120.0
    resume_session_id: str | None = None
    on_event: EventCallback | None = attrs.field(default=None, eq=False, repr=False)
    # Called once with (pid, process group id) as soon as the agent process exists, so the
    # engine can record the worker for the reaper.
    on_spawn: Callable[[int, int], None] | None = attrs.field(default=None, eq=False, repr=False)
    # Set by the engine to stop the agent (its item left the roadmap, its PR was closed).
    cancel: asyncio.Event | None = attrs.field(default=None, eq=False, repr=False)


class CostSource(enum.StrEnum):
    PROVIDER = "provider"  # the CLI's own figure (first-party models only)
    GATEWAY = "gateway"  # a LiteLLM header or OpenRouter's usage.cost
    RATE_CARD = "rate_card"  # tokens x oxi_core/defaults/rates.yaml
    ESTIMATE = "estimate"
    NONE = "none"


def failure_extra(kind: FailureKind) -> dict[str, Any]:
    """The DispatchResult field an adapter's classification adds for a failure of ``kind``."""
    return {"failure_kind": kind}


@attrs.frozen
class DispatchResult:
    classification: Classification
    reason: str = ""
    cost_usd: float = 0.0
    cost_source: str = CostSource.NONE
    usage: Usage = Usage()
    turns: int = 0
    session_id: str | None = None
    duration_s: float = 0.0
    final_text: str = ""
    permission_denials: tuple[str, ...] = ()
    rate_limit_exhausted: bool = False
    retry_after_s: float | None = None
    exit_code: int | None = None
    model: str | None = None
    agent: str = ""
    # Why cost_usd may be lower than what the run really spent (tokens the CLI did not report,
    # e.g. Codex reasoning tokens missing from both its stream and its session file). The
    # engine records a ``budget_undercount`` ledger event when this is set.
    budget_undercount: str | None = None
    # Why it failed, as the adapter classified it (None for a success): routing falls back
    # to the next agent on a provider failure (models.PROVIDER_FAILURES), and the ledger keeps
    # it with the result.
    failure_kind: FailureKind | None = None

    @property
    def ok(self) -> bool:
        return self.classification is Classification.SUCCESS

    def undercount_event(self) -> CanonicalEvent | None:
        """The `system` event an adapter streams when ``cost_usd`` may be low, else None."""
        if not self.budget_undercount:
            return None
        return CanonicalEvent(CanonicalKind.SYSTEM, {
            "subtype": "budget_undercount", "reason": self.budget_undercount,
            "cost_usd": self.cost_usd, "agent": self.agent}, self.session_id)

    def result_event(self) -> dict[str, Any]:
        """The canonical `result` event for this run, as the ledger records it."""
        return {
            "type": CanonicalKind.RESULT.value,
            "classification": self.classification.value,
            "reason": self.reason,
            "failure_kind": None if self.failure_kind is None else str(self.failure_kind),
            "cost_usd": self.cost_usd,
            "cost_source": str(self.cost_source),
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cached_tokens": self.usage.cached_tokens,
            "reasoning_tokens": self.usage.reasoning_tokens,
            "turns": self.turns,
            "session_id": self.session_id,
            "duration_s": round(self.duration_s, 3),
            "final_text": self.final_text[-4000:],
            "permission_denials": list(self.permission_denials),
            "rate_limit_exhausted": self.rate_limit_exhausted,
            "retry_after_s": self.retry_after_s,
            "exit_code": self.exit_code,
            "model": self.model,
            "agent": self.agent,
            "budget_undercount": self.budget_undercount,
        }
