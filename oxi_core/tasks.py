"""The task state machine: every status and every allowed transition, in one place.

docs/task-states.md draws the same graph; tests/test_tasks.py keeps the two in step.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from oxi_core.errors import IllegalTransition


class TaskStatus(enum.StrEnum):
    PLANNED = "planned"  # ready to be dispatched (once any retry_due_at has passed)
    HELD = "held"  # parked by a gate (over budget) until `oxi task release`
    DISPATCHED = "dispatched"  # claimed; a worker is running its agent
    RETRYING = "retrying"  # a transient failure; waits for retry_due_at, holding no slot
    IN_REVIEW = "in_review"  # a pull request is open
    MERGED = "merged"  # landed on the base branch
    FAILED = "failed"  # permanent failure or retries exhausted; `oxi task retry` reopens
    ABANDONED = "abandoned"  # removed from the roadmap, or its PR closed by a person
    DONE = "done"  # listed in the roadmap's Done section: shipped before oxi tracked it
    SKIPPED = "skipped"  # a gate refused it for good; `oxi task retry` plans it again


S = TaskStatus

TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    S.PLANNED: frozenset({S.DISPATCHED, S.HELD, S.SKIPPED, S.ABANDONED, S.DONE, S.MERGED}),
    S.HELD: frozenset({S.PLANNED, S.ABANDONED, S.DONE}),
    # dispatched -> planned: reaped zombie, worktree hook failed, cancelled claim.
    S.DISPATCHED: frozenset(
        {S.IN_REVIEW, S.RETRYING, S.FAILED, S.PLANNED, S.ABANDONED, S.MERGED}
    ),
    S.RETRYING: frozenset({S.DISPATCHED, S.PLANNED, S.FAILED, S.SKIPPED, S.ABANDONED,
                           S.DONE}),
    # in_review -> planned: the critic rejected it, or the merge conflicted.
    S.IN_REVIEW: frozenset({S.MERGED, S.PLANNED, S.ABANDONED, S.FAILED}),
    S.FAILED: frozenset({S.PLANNED, S.ABANDONED, S.DONE}),
    S.SKIPPED: frozenset({S.PLANNED, S.ABANDONED, S.DONE}),
    S.ABANDONED: frozenset({S.PLANNED}),  # the item came back to the roadmap
    S.MERGED: frozenset(),
    S.DONE: frozenset(),
}

OPEN_STATUSES = frozenset({S.PLANNED, S.HELD, S.DISPATCHED, S.RETRYING, S.IN_REVIEW, S.FAILED,
                           S.SKIPPED})


def can_transition(current: TaskStatus, target: TaskStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(task_id: str, current: str, target: str) -> None:
    """Raise IllegalTransition unless the state machine connects ``current`` to ``target``."""
    if not can_transition(TaskStatus(current), TaskStatus(target)):
        raise IllegalTransition(task_id, current, target)


@attrs.frozen
class Task:
    """A row of the `tasks` projection, as the engine reads it."""

    id: str
    tier: int
    title: str
    status: TaskStatus
    subtitle: str = ""
    section: str = ""
    position: int = 0
    files_touched: tuple[str, ...] = ()
    attempts: int = 0
    last_progress_at: str | None = None
    last_deferred_at: str | None = None
    retry_due_at: str | None = None
    pr_number: int | None = None
    branch: str | None = None
    worktree: str | None = None
    agent: str | None = None
    model: str | None = None
    worker_host: str | None = None
    worker_pid: int | None = None
    worker_pgid: int | None = None
    worker_started_at: float | None = None
    supervisor_pid: int | None = None
    supervisor_started_at: float | None = None
    last_error: str | None = None
    critic_reasons: str | None = None
    held_reason: str | None = None
    cost_usd: float = 0.0
    in_roadmap: bool = True
    deferred_reason: str | None = None
    budget_released: bool = False
    session_id: str | None = None
    turns: int = 0
    tokens: int = 0
    last_event: str | None = None
    # The attempt count when this round of attempts began (`oxi task retry` starts a round).
    round_start: int = 0

    @property
    def round_attempts(self) -> int:
        """Attempts in the current round: what max_attempts and the backoff count."""
        return self.attempts - self.round_start
