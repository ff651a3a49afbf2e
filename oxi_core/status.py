"""What `oxi status` shows, computed from the ledger alone (never from what agents claimed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import isoformat, parse_ts, utcnow
from oxi_core.tasks import TaskStatus


def _age_s(ts: str | None, now: datetime) -> float | None:
    return None if ts is None else round((now - parse_ts(ts)).total_seconds(), 1)


def status_report(ledger: Ledger, *, now: datetime | None = None,
                  recent: int = 10) -> dict[str, Any]:
    now = now or utcnow()
    paused = ledger.state_get("paused") is not None
    day_start = isoformat(now.replace(hour=0, minute=0, second=0, microsecond=0))
    tasks = ledger.tasks()
    counts: dict[str, int] = {}
    for task in tasks:
        counts[str(task.status)] = counts.get(str(task.status), 0) + 1
    in_flight = []
    for task in tasks:
        if task.status is not TaskStatus.DISPATCHED:
            continue
        in_flight.append({
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
        })
    retrying = [
        {"task": t.id, "attempt": t.attempts, "due": t.retry_due_at, "last_error": t.last_error}
        for t in tasks if t.status is TaskStatus.RETRYING
    ]
    return {
        "counts": counts,
        "tasks": [
            {"id": t.id, "tier": t.tier, "title": t.title, "status": str(t.status),
             "attempts": t.attempts, "pr": t.pr_number, "cost_usd": round(t.cost_usd, 6),
             "last_error": t.last_error}
            for t in tasks
        ],
        "in_flight": in_flight,
        "retrying": retrying,
        "held": [{"task": t.id, "reason": t.held_reason} for t in tasks
                 if t.status is TaskStatus.HELD],
        "cost_today_usd": round(ledger.spend_since(day_start), 6),
        "cost_total_usd": round(ledger.total_spend(), 6),
        "paused": paused,
        "paused_reason": _paused_reason(ledger) if paused else None,
        "forge_requests": forge_requests(ledger, day_start),
        "recent_events": [
            {"id": e.id, "ts": e.ts, "type": e.type, "task": e.task_id, "cost_usd": e.cost_usd}
            for e in ledger.events(newest_first=True, limit=recent)
        ],
    }


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
