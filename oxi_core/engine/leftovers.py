"""Worktrees left behind: which a worker may still be using, and what a sweep did with the
others, recorded so that a worktree kept for the same reason is reported once, not per tick."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus

WORKTREE_EVENTS = (ev.WORKTREE_CREATED, ev.WORKTREE_REUSED, ev.WORKTREE_KEPT,
                   ev.WORKTREE_REMOVED)


def _last_worktree_event(ledger: Ledger, task_id: str) -> tuple[str, dict[str, object]] | None:
    found = ledger.events(types=WORKTREE_EVENTS, task_id=task_id, newest_first=True, limit=1)
    return (found[0].type, dict(found[0].payload)) if found else None


def busy_task_ids(ledger: Ledger) -> set[str]:
    """Tasks whose worktree a worker may be using: dispatched ones, and those in review whose
    worker has not yet let go of its worktree (the critic runs in it)."""
    busy = {task.id for task in ledger.tasks([TaskStatus.DISPATCHED])}
    for task in ledger.tasks([TaskStatus.IN_REVIEW]):
        last = _last_worktree_event(ledger, task.id)
        if last is not None and last[0] in (ev.WORKTREE_CREATED, ev.WORKTREE_REUSED):
            busy.add(task.id)
    return busy


def record_sweep(ledger: Ledger, swept: Iterable[tuple[Path, str | None]], *, by: str) -> None:
    """An event per worktree removed, and per worktree kept unless the last word on it was
    already "kept, for this same reason"."""
    for path, kept in swept:
        if kept is None:
            ledger.append(ev.WORKTREE_REMOVED, task_id=path.name,
                          payload={"path": str(path), "by": by})
            continue
        last = _last_worktree_event(ledger, path.name)
        if last is not None and last[0] == ev.WORKTREE_KEPT and (
                last[1].get("path"), last[1].get("reason")) == (str(path), kept):
            continue
        ledger.append(ev.WORKTREE_KEPT, task_id=path.name,
                      payload={"path": str(path), "reason": kept, "by": by})
