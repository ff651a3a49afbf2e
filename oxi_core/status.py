"""What `oxi status` shows, computed from the ledger (never from what agents claimed), plus
whether the operator's checkout lags the branch oxi merges into."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from oxi_core.event import isoformat, parse_ts, utcnow
from oxi_core.git import behind_and_ahead
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.tasks import Task, TaskStatus


def _age_s(ts: str | None, now: datetime) -> float | None:
    try:
        return None if ts is None else round((now - parse_ts(ts)).total_seconds(), 1)
    except (TypeError, ValueError):  # a damaged row: no age rather than no report
        return None


@attrs.frozen
class BaseBranch:
    """The operator's checkout and the branch oxi merges into on the remote."""

    repo_root: Path
    remote: str
    branch: str


def local_base_note(base: BaseBranch) -> dict[str, Any] | None:
    """When the operator's local base branch lags the remote's (oxi merges on the remote, so
    their next push would be rejected): how far, and the command that catches up."""
    upstream = f"{base.remote}/{base.branch}"
    counts = behind_and_ahead(f"refs/heads/{base.branch}", f"refs/remotes/{upstream}",
                              base.repo_root)
    if counts is None or counts[0] == 0:
        return None
    behind, ahead = counts
    plural = "s" if behind != 1 else ""
    if ahead:
        message = (f"your local {base.branch} and {upstream} have diverged ({ahead} local, "
                   f"{behind} merged there): `git pull --rebase` before you push")
    else:
        message = (f"your local {base.branch} is {behind} commit{plural} behind {upstream} "
                   f"(oxi merges there): `git pull --ff-only` before you push")
    return {"branch": base.branch, "upstream": upstream, "behind": behind, "ahead": ahead,
            "message": message}


def status_summary(ledger: Ledger, *, now: datetime | None = None,
                   base: BaseBranch | None = None) -> dict[str, Any]:
    """What a tick's closing lines show (a part of ``status_report``): tasks counted by status,
    the spend today and in total, and the local base's lag; no task is read one by one, so
    this costs the same for 10 tasks as for 10,000."""
    now = now or utcnow()
    counts = {str(status): int(count) for status, count in ledger.query(
        "SELECT status, count(*) FROM tasks GROUP BY status")}
    return {
        "counts": counts,
        **spend(ledger, now),
        "local_base_behind": local_base_note(base) if base is not None else None,
    }


def status_report(ledger: Ledger, *, now: datetime | None = None, recent: int = 10,
                  base: BaseBranch | None = None) -> dict[str, Any]:
    now = now or utcnow()
    tasks = ledger.tasks()
    summary = status_summary(ledger, now=now, base=base)
    retrying = [
        {"task": t.id, "attempt": t.attempts, "due": t.retry_due_at, "last_error": t.last_error}
        for t in tasks if t.status is TaskStatus.RETRYING
    ]
    return {
        "counts": summary["counts"],
        "tasks": [
            {"id": t.id, "tier": t.tier, "title": t.title, "status": str(t.status),
             "attempts": t.attempts, "pr": t.pr_number, "cost_usd": round(t.cost_usd, 6),
             "last_error": t.last_error}
            for t in tasks
        ],
        "in_flight": in_flight(ledger, tasks, now),
        "retrying": retrying,
        "held": [{"task": t.id, "reason": t.held_reason} for t in tasks
                 if t.status is TaskStatus.HELD],
        "cost_today_usd": summary["cost_today_usd"],
        "cost_total_usd": summary["cost_total_usd"],
        **pause_state(ledger),
        "forge_requests": forge_requests(ledger, day_start(now)),
        "local_base_behind": summary["local_base_behind"],
        "recent_events": [
            {"id": e.id, "ts": e.ts, "type": e.type, "task": e.task_id, "cost_usd": e.cost_usd}
            for e in ledger.events(newest_first=True, limit=recent)
        ],
    }


def day_start(now: datetime) -> str:
    return isoformat(now.replace(hour=0, minute=0, second=0, microsecond=0))


def in_flight(ledger: Ledger, tasks: Iterable[Task], now: datetime) -> list[dict[str, Any]]:
    """The dispatched ones among ``tasks``: who runs them where, since when, and the agent's
    last sign of life (the heartbeat)."""
    return [{
        "task": task.id,
        "title": task.title,
        "agent": task.agent,
        "model": task.model,
        "host": task.worker_host,
        "pid": task.worker_pid,
        "supervisor_pid": task.supervisor_pid,
        "attempt": task.attempts,
        "started": _claimed_at(ledger, task.id),
        "last_event": task.last_event,
        "last_event_age_s": _age_s(task.last_progress_at, now),
        "session_id": task.session_id,
        "turns": task.turns,
        "tokens": task.tokens,
        "cost_usd": round(task.cost_usd, 6),
    } for task in tasks if task.status is TaskStatus.DISPATCHED]


def spend(ledger: Ledger, now: datetime) -> dict[str, float]:
    return {"cost_today_usd": round(ledger.spend_since(day_start(now)), 6),
            "cost_total_usd": round(ledger.total_spend(), 6)}


def pause_state(ledger: Ledger) -> dict[str, Any]:
    """The killswitch, and who threw it why."""
    paused = ledger.state_get("paused") is not None
    return {"paused": paused, "paused_reason": _paused_reason(ledger) if paused else None}


def _claimed_at(ledger: Ledger, task_id: str) -> str | None:
    found = ledger.events(types=[ev.TASK_CLAIMED], task_id=task_id, newest_first=True, limit=1)
    return found[0].ts if found else None


def _paused_reason(ledger: Ledger) -> str:
    found = ledger.events(types=[ev.ENGINE_PAUSED], newest_first=True, limit=1)
    if not found:
        return ""
    payload = found[0].payload
    return f"{payload.get('reason') or 'paused'} (by {payload.get('by', 'operator')})"


def forge_requests(ledger: Ledger, since: str) -> dict[str, Any]:
    """The forge's requests: the last tick's (with the rate limit it saw) and today's total."""
    last = ledger.events(types=[ev.FORGE_REQUESTS], newest_first=True, limit=1)
    rows = ledger.query(
        "SELECT count(*), coalesce(sum(json_extract(payload, '$.requests')), 0), "
        "coalesce(sum(json_extract(payload, '$.counted')), 0) FROM events "
        "WHERE type = ? AND ts >= ?", (ev.FORGE_REQUESTS, since))
    ticks, requests, counted = rows[0]
    return {
        "last_tick": None if not last else {"ts": last[0].ts, **last[0].payload},
        "today": {"ticks": int(ticks), "requests": int(requests), "counted": int(counted)},
    }
