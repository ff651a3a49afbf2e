"""Value types shared across oxi, and the one cattrs converter that moves data across boundaries
(built on first use: cattrs costs more to import than most commands need)."""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

# Re-exported: the ledger's row type and timestamps live apart so the ledger imports no more.
from oxi_core.event import Event as Event
from oxi_core.event import isoformat as isoformat
from oxi_core.event import parse_ts as parse_ts
from oxi_core.event import utcnow as utcnow


class Classification(enum.StrEnum):
    """How a dispatch ended: the engine's retry policy keys off this, nothing else."""

    SUCCESS = "SUCCESS"
    RETRYABLE_TRANSIENT = "RETRYABLE_TRANSIENT"
    FAILED = "FAILED"
    # The agent cannot run as configured (its credentials were refused): every task would end
    # the same way, so the task is requeued without counting the attempt and the engine pauses.
    SETUP_ERROR = "SETUP_ERROR"


class FailureKind(enum.StrEnum):
    """Why a dispatch or an inference call failed, set by whoever classified it (the agent
    adapters, the inference targets): routing's fallback and the ledger read this, never the
    wording of a reason."""

    # The provider's side: another agent or target of the fallback chain may succeed.
    TIMEOUT = "timeout"  # the provider did not answer in time (HTTP 408, a request timeout)
    CONNECTION = "connection"  # refused, reset, DNS: the gateway or provider is down
    SERVER_ERROR = "server_error"  # 5xx
    OVERLOADED = "overloaded"  # 529, or a 503 that says so
    CREDENTIALS = "credentials"  # 401, 403
    # The provider refused this caller for now, or this request for good.
    RATE_LIMITED = "rate_limited"  # 429
    BAD_REQUEST = "bad_request"  # any other 4xx: the request itself is wrong
    MALFORMED = "malformed"  # a 2xx whose body is not the JSON the protocol promises
    # oxi's side.
    BUDGET = "budget"  # a cap stopped it (oxi's daily or role cap, or the agent's own)
    NOT_CONFIGURED = "not_configured"  # the routed target is not in oxi.toml
    SETUP_ERROR = "setup_error"  # the agent could not start (binary, sandbox, arguments)
    # The agent's run itself.
    STALLED = "stalled"  # silent past the stall or start-up allowance
    AGENT_TIMEOUT = "agent_timeout"  # ran past the wall-clock timeout
    INTERRUPTED = "interrupted"  # killed or interrupted before it finished
    CANCELLED = "cancelled"  # oxi stopped it (its item left the roadmap, shutdown)
    AGENT_ERROR = "agent_error"  # it ran and failed: its exit, an error it reported,
    # max turns, every tool call refused, a line over 1 MB


# A provider failing for a reason of its own: the next choice of the fallback chain may work.
PROVIDER_FAILURES = frozenset({
    FailureKind.TIMEOUT, FailureKind.CONNECTION, FailureKind.SERVER_ERROR,
    FailureKind.OVERLOADED, FailureKind.CREDENTIALS,
})


class GateAction(enum.StrEnum):
    ALLOW = "allow"
    DEFER = "defer"  # try again next tick; the task stays planned
    HOLD = "hold"  # park the task until an operator releases it
    SKIP = "skip"  # refuse it for good: it is never dispatched (`oxi task retry` plans it again)


@attrs.frozen
class GateDecision:
    action: GateAction
    reason: str = ""
    details: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def allow(cls) -> GateDecision:
        return cls(GateAction.ALLOW)

    @classmethod
    def defer(cls, reason: str, **details: Any) -> GateDecision:
        return cls(GateAction.DEFER, reason, details)

    @classmethod
    def hold(cls, reason: str, **details: Any) -> GateDecision:
        return cls(GateAction.HOLD, reason, details)

    @classmethod
    def skip(cls, reason: str, **details: Any) -> GateDecision:
        return cls(GateAction.SKIP, reason, details)


class VerdictKind(enum.StrEnum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"
    # The judge could not judge (its model unreachable, its answer unreadable): never an
    # approval, and no reason to redo the work either; the pull request waits for a person.
    ABSTAIN = "ABSTAIN"


@attrs.frozen
class Verdict:
    """A judge's answer. Critics judge pull requests; proposal judges judge candidates."""

    kind: VerdictKind
    reasons: tuple[str, ...] = ()
    output_tail: str = ""
    cost_usd: float = 0.0
    cost_source: str = "none"

    @property
    def approved(self) -> bool:
        return self.kind is VerdictKind.APPROVE


class PullRequestState(enum.StrEnum):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"
    CONFLICTED = "conflicted"


class ChecksState(enum.StrEnum):
    """A pull request's checks on its head commit, as the forge sees them."""

    UNKNOWN = ""  # the forge did not say (or was not asked)
    NONE = "none"  # the head has no checks at all
    PENDING = "pending"
    FAILING = "failing"
    PASSING = "passing"


@attrs.frozen
class PullRequest:
    number: int
    branch: str
    base: str
    title: str
    state: PullRequestState
    task_id: str | None = None
    files: tuple[str, ...] = ()
    auto_merge_armed: bool = False
    head_sha: str = ""
    merged_sha: str | None = None
    url: str = ""
    closed_reason: str = ""
    body: str = ""
    merged_at: datetime | None = None
    checks: ChecksState = ChecksState.UNKNOWN
    mergeable: bool | None = None  # None: not known (yet)


@attrs.frozen
class MergeAttempt:
    """What a guarded direct merge did: merged, or why it waits (checks pending or failing,
    not mergeable, the head moved)."""

    merged: bool
    pr: PullRequest | None = None
    waiting: str = ""


@attrs.frozen
class ForgeNotice:
    """Something a forge saw that belongs in the ledger: a rate limit, a retried request, an
    outage. ``kind`` is "rate_limited", "retried", "unavailable" or the forge's own word."""

    kind: str
    message: str
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ForgeReport:
    """A forge's requests since it was last asked: how many, how many counted against its rate
    limit, forge-specific figures, and notices."""

    requests: int = 0
    counted: int = 0
    details: Mapping[str, Any] = attrs.field(factory=dict)
    notices: tuple[ForgeNotice, ...] = ()


@attrs.frozen
class PullRequestSubject:
    """What a critic reviews: the pull request and a checkout of its tree."""

    pr: PullRequest
    tree: Path
    task_id: str
    title: str
    subtitle: str = ""
    diff: str = ""


@attrs.frozen
class Candidate:
    """An outside idea found by an auto-improve source.

    ``identifier`` is stable: the same idea fetched twice carries the same one (a release's
    tag URL, a post's id). ``signal_kind`` says what kind of signal it is (``github_release``,
    ``newsletter_post``, ``x_post``) and ``target`` what it is about (a repository
    ``owner/name``, a project's name; empty means the identifier): the same kind and target
    within 14 days is one signal, proposed once. Everything here is untrusted text.
    """

    source: str
    identifier: str
    title: str
    summary: str = ""
    url: str = ""
    published_at: datetime | None = None
    signal_kind: str = ""
    target: str = ""
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def key(self) -> str:
        """Who found it and its identifier: one candidate, however often it is fetched."""
        return f"{self.source}:{self.identifier}"

    @property
    def target_key(self) -> str:
        """(signal kind, target) as one string, for the temporal dedup."""
        return f"{self.signal_kind}:{self.target or self.identifier}"

    @property
    def text(self) -> str:
        """Title and summary: what ranking reads."""
        return f"{self.title}\n{self.summary}".strip()


@attrs.frozen
class InferenceResult:
    """One non-agentic model call's answer and what it cost.

    ``cost_source`` says where ``cost_usd`` came from: ``gateway`` (LiteLLM's
    ``x-litellm-response-cost`` header), ``provider`` (the provider's own figure in the body:
    OpenRouter's ``usage.cost``, xAI's ``usage.cost_in_usd_ticks``), ``rate_card`` (tokens x
    ``defaults/rates.yaml``) or ``unknown``. ``cost_note`` is set when the figure is not the
    one the caller was charged (a rate-card estimate, an unknown price), so budgets read it
    with care.
    """

    text: str
    model: str
    cost_usd: float
    cost_source: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_note: str = ""


@functools.cache
def _converter() -> Any:
    import cattrs

    converter = cattrs.Converter()
    converter.register_unstructure_hook(Path, str)
    converter.register_unstructure_hook(datetime, isoformat)
    converter.register_structure_hook(Path, lambda value, _type: Path(value))
    converter.register_structure_hook(datetime,
                                      lambda value, _type: datetime.fromisoformat(value))
    return converter


def __getattr__(name: str) -> Any:
    # `from oxi_core.models import converter` builds it (and imports cattrs) only then.
    if name == "converter":
        return _converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
