"""What gates see when they decide: a read-only snapshot of the engine at one moment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import attrs

from oxi_core.models import PullRequest
from oxi_core.policy import Policy
from oxi_core.tasks import Task


@attrs.frozen
class EngineState:
    now: datetime
    policy: Policy
    in_flight: tuple[Task, ...]
    open_prs: tuple[PullRequest, ...]
    spent_today_usd: float
    # Dollars reserved by in-flight tasks (their estimates), not yet recorded as spend.
    reserved_usd: float
    worker_model: str | None
    estimate: Callable[[Task], float] = attrs.field(eq=False, repr=False)
    daily_budget_usd: float = 0.0
    extra: Mapping[str, object] = attrs.field(factory=dict)
    # Tasks whose pull request is open as the ledger knows it (read in the same query as
    # in_flight, so a task moving between the two is never missed): a forge's list of open PRs
    # may lag behind, or drop a PR the moment it merges while its task is still settling.
    in_review: tuple[Task, ...] = ()
