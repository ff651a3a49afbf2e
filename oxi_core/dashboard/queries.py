"""Every figure the dashboard shows, read from the ledger: one function per panel, each
returning the JSON-ready document its /api endpoint serves (docs/json.md) and its HTML panel
renders. They reuse what `oxi status`, `oxi task show`, `oxi shadow report` and
`oxi auto-improve status` compute; what is new here (cost per day and model, throughput, the
events filter) is a few indexed queries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import attrs

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.ledger.migrations import SPEND_MODEL_SQL, SPEND_ROLE_SQL, UNCOUNTED_SPEND
from oxi_core.models import Event, isoformat
from oxi_core.policy import RepoPaths
from oxi_core.tasks import Task, TaskStatus

WINDOW_DAYS = 30
# Rows per board column and per list: the counts say how many there are in all.
LIST_LIMIT = 50
EVENT_LIMITS = (50, 200, 500)
# The events list reads a payload only up to this size (a 5 MB one is summarised).
EVENT_PAYLOAD_CHARS = 65_536
TRANSCRIPT_TAIL = 40

# Costed events whose payload's own `role` is not the part they played.
ROLE_OF_TYPE = {ev.DISPATCH_RESULT: "worker", ev.ROUTE_FALLBACK: "worker",
                ev.CRITIC_VERDICT: "critic", ev.AGENTIC_SHADOW_OBSERVED: "shadow"}


@attrs.frozen
class Settings:
    """What the dashboard knows from oxi.toml; a file that cannot be read leaves the defaults
    and ``problem`` says why."""

    paths: RepoPaths
    daily_cap_usd: float | None = None
    auto_improve: Any = None  # AutoImproveSettings (imported only when the panel is read)
    sources: tuple[str, ...] = ()
    problem: str | None = None


def day_of(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def window_days(now: datetime, days: int = WINDOW_DAYS) -> list[str]:
    """The last ``days`` UTC days, oldest first, today included."""
    today = day_of(now)
    return [isoformat(today - timedelta(days=back))[:10] for back in range(days - 1, -1, -1)]


# -- the task board -------------------------------------------------------------------------


def board(ledger: Ledger, now: datetime) -> dict[str, Any]:
    """Tasks by status: planned, in flight (heartbeat and the agent's last event), in review,
    retrying (next attempt), held, failed and skipped (why), merged (pull request). What
    `oxi status` reports, read a column at a time (at most LIST_LIMIT tasks each, from the
    status index) rather than every task."""
    from oxi_core import status
    from oxi_core.timeline import task_row

    def column(task_status: TaskStatus) -> list[Task]:
        return ledger.tasks([task_status], limit=LIST_LIMIT)

    def brief(task: Task) -> dict[str, Any]:
        return {"id": task.id, "tier": task.tier, "title": task.title,
                "attempts": task.attempts, "pr": task.pr_number,
                "reason": task_row(task)["reason"]}

    dispatched = column(TaskStatus.DISPATCHED)
    heartbeats = {task.id: task.last_progress_at for task in dispatched}
    columns: dict[str, list[dict[str, Any]]] = {
        name: [brief(task) for task in column(task_status)]
        for name, task_status in (("planned", TaskStatus.PLANNED),
                                  ("in_review", TaskStatus.IN_REVIEW),
                                  ("held", TaskStatus.HELD), ("failed", TaskStatus.FAILED),
                                  ("skipped", TaskStatus.SKIPPED))}
    columns["retrying"] = [{**brief(task), "due": task.retry_due_at}
                           for task in column(TaskStatus.RETRYING)]
    columns["in_flight"] = [{**row, "id": row["task"], "heartbeat_at": heartbeats[row["task"]]}
                            for row in status.in_flight(ledger, dispatched, now)]
    columns["merged"] = _merged(ledger)
    counts = {str(name): int(n) for name, n in ledger.query(
        "SELECT status, count(*) FROM tasks GROUP BY status")}
    names = {"in_flight": "dispatched", "merged": "merged"}
    return {
        "counts": counts,
        **status.pause_state(ledger),
        **status.spend(ledger, now),
        "totals": {name: counts.get(names.get(name, name), 0) for name in columns},
        "columns": columns,
    }


def _merged(ledger: Ledger) -> list[dict[str, Any]]:
    """The newest merges, from their task_merged events (when, which pull request)."""
    found = ledger.events(types=[ev.TASK_MERGED], newest_first=True, limit=LIST_LIMIT,
                          max_payload_chars=EVENT_PAYLOAD_CHARS)
    ids = sorted({event.task_id for event in found if event.task_id})
    tasks = {row[0]: row[1:] for row in ledger.query(
        "SELECT id, title, attempts FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),))}
    return [{"id": event.task_id, "title": tasks.get(event.task_id or "", ("", None))[0],
             "pr": event.payload.get("pr"), "merged_at": event.ts,
             "how": event.payload.get("how") or "",
             "attempts": tasks.get(event.task_id or "", ("", None))[1]} for event in found]


# -- money -----------------------------------------------------------------------------------


def cost(ledger: Ledger, now: datetime, settings: Settings) -> dict[str, Any]:
    """Dollars per day and per role and model over the last 30 days, and today's spend
    against the daily cap."""
    days = window_days(now)
    rows, source = spend_rows(ledger, days[0])
    per_day: dict[str, dict[str, float]] = {day: {} for day in days}
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for day, type_, role_field, model, usd, count in rows:
        if day not in per_day or not usd:
            continue
        role = ROLE_OF_TYPE.get(type_) or role_field or type_
        label = f"{role} · {model}" if model else role
        per_day[day][label] = round(per_day[day].get(label, 0.0) + usd, 6)
        key = keys.setdefault((role, model), {"role": role, "model": model, "label": label,
                                              "cost_usd": 0.0, "events": 0})
        key["cost_usd"] = round(key["cost_usd"] + usd, 6)
        key["events"] += count
    today = ledger.spend_since(isoformat(day_of(now)))
    cap = settings.daily_cap_usd
    return {
        "window_days": WINDOW_DAYS,
        "days": [{"day": day, "cost_usd": round(sum(by.values()), 6), "by": by}
                 for day, by in per_day.items()],
        "by_role_model": sorted(keys.values(), key=lambda k: (-k["cost_usd"], k["label"])),
        "total_usd": round(sum(k["cost_usd"] for k in keys.values()), 6),
        "today_usd": round(today, 6),
        "daily_cap_usd": cap,
        "cap_used": round(today / cap, 4) if cap else None,
        "source": source,
    }


def spend_rows(ledger: Ledger, first_day: str) -> tuple[list[tuple[Any, ...]], str]:
    """(day, type, role, model, dollars, events) from ``first_day`` on: from the per-day totals
    of migration m011 (with the events not counted in them yet, m012), or, on a ledger that
    has not had it yet, from the events themselves. A key may come twice: callers add."""
    applied = ledger.applied_migrations()
    if "m011_spend_by_day" in applied:
        kept = ledger.query(
            "SELECT day, type, role, model, cost_usd, events FROM spend_by_day "
            "WHERE day >= ? AND events > 0", (first_day,))
        if "m012_spend_by_batch" in applied:
            kept += raw_spend_rows(ledger, first_day, where=UNCOUNTED_SPEND)
        return kept, "spend_by_day"
    return raw_spend_rows(ledger, first_day), "events"


def raw_spend_rows(ledger: Ledger, first_day: str,
                   where: str = "cost_usd != 0") -> list[tuple[Any, ...]]:
    """The same figures read from the costed events (``where``: SQL from this package's
    constants) themselves (what m011's totals spare)."""
    role, model = SPEND_ROLE_SQL.format(p="payload"), SPEND_MODEL_SQL.format(p="payload")
    return ledger.query(
        f"SELECT substr(ts, 1, 10), type, {role}, {model}, sum(cost_usd), count(*) "  # noqa: S608
        f"FROM events WHERE ts >= ? AND {where} GROUP BY 1, 2, 3, 4", (first_day,))


def throughput(ledger: Ledger, now: datetime) -> dict[str, Any]:
    """Merges per day over the last 30 days, and attempts (claims) per merge."""
    days = window_days(now)
    counted = {ev.TASK_MERGED: dict.fromkeys(days, 0), ev.TASK_CLAIMED: dict.fromkeys(days, 0)}
    for type_, by_day in counted.items():
        for day, count in ledger.query(
                "SELECT substr(ts, 1, 10), count(*) FROM events WHERE type = ? AND ts >= ? "
                "GROUP BY 1", (type_, days[0])):
            if day in by_day:
                by_day[day] = int(count)
    merged, attempts = sum(counted[ev.TASK_MERGED].values()), sum(
        counted[ev.TASK_CLAIMED].values())
    return {
        "window_days": WINDOW_DAYS,
        "days": [{"day": day, "merged": counted[ev.TASK_MERGED][day],
                  "attempts": counted[ev.TASK_CLAIMED][day]} for day in days],
        "merged": merged,
        "attempts": attempts,
        "attempts_per_merge": round(attempts / merged, 2) if merged else None,
    }


# -- shadow runs and auto-improve ------------------------------------------------------------


def shadow(ledger: Ledger) -> dict[str, Any]:
    """The last 50 paired shadow runs, their agreement rate and cost delta (T2-35)."""
    from oxi_core.agentic.shadow import shadow_report

    return shadow_report(ledger)


def auto_improve(ledger: Ledger, settings: Settings) -> dict[str, Any]:
    """`oxi auto-improve status`, the last scan's digest and the proposals staged for review."""
    from oxi_core.auto_improve import store
    from oxi_core.auto_improve.service import status_report
    from oxi_core.auto_improve.settings import AutoImproveSettings

    config = settings.auto_improve or AutoImproveSettings()
    report = status_report(ledger, config, settings.sources)
    last_scan = store.last_event(ledger, ev.AUTO_IMPROVE_SCAN_FINISHED)
    staged = store.proposals(ledger, [store.ProposalStatus.STAGED])
    failures = ledger.events(types=[ev.AUTO_IMPROVE_SOURCE_FAILED], newest_first=True, limit=5,
                             max_payload_chars=EVENT_PAYLOAD_CHARS)
    return {
        **report,
        "digest": last_scan[1] if last_scan else None,
        "proposals": [{"id": p.id, "title": p.title, "subtitle": p.subtitle,
                       "emitted_at": p.emitted_at} for p in staged[:LIST_LIMIT]],
        "source_failures": [{"ts": e.ts, "source": e.payload.get("source"),
                             "reason": e.payload.get("reason")} for e in failures],
    }


# -- events and one task ---------------------------------------------------------------------


@attrs.frozen
class EventFilter:
    type: str = ""
    task: str = ""
    limit: int = EVENT_LIMITS[0]

    @classmethod
    def parse(cls, query: dict[str, list[str]]) -> EventFilter:
        def first(name: str) -> str:
            return (query.get(name) or [""])[0].strip()[:200]

        try:
            limit = int(first("limit") or EVENT_LIMITS[0])
        except ValueError:
            limit = EVENT_LIMITS[0]
        return cls(first("type"), first("task"), limit if limit in EVENT_LIMITS
                   else EVENT_LIMITS[0])

    def as_query(self) -> dict[str, str]:
        return {name: str(value) for name, value in attrs.asdict(self).items()
                if value and value != EVENT_LIMITS[0]}


def events(ledger: Ledger, wanted: EventFilter) -> dict[str, Any]:
    """The newest events, by type and task if asked."""
    from oxi_core.timeline import brief_event

    return {"filter": attrs.asdict(wanted),
            "events": [brief_event(e) for e in _filtered(ledger, wanted)]}


def _filtered(ledger: Ledger, wanted: EventFilter) -> list[Event]:
    return ledger.events(types=[wanted.type] if wanted.type else None,
                         task_id=wanted.task or None, newest_first=True, limit=wanted.limit,
                         max_payload_chars=EVENT_PAYLOAD_CHARS)


def live(ledger: Ledger, after: int) -> dict[str, Any]:
    """What the page polls: a token that moves whenever anything in the ledger changed (task
    heartbeats included), and the events after ``after``."""
    from oxi_core.timeline import brief_event

    token = ledger.data_version()
    last = ledger.query("SELECT coalesce(max(id), 0) FROM events")[0][0]
    new = ledger.events(after_id=after, newest_first=True, limit=20,
                        max_payload_chars=EVENT_PAYLOAD_CHARS) if after < last else []
    return {"token": str(token), "last_event_id": int(last),
            "events": [brief_event(e) for e in new]}


def task(ledger: Ledger, paths: RepoPaths, task_id: str) -> dict[str, Any] | None:
    """`oxi task show`: every attempt with its outcome, reason, cost, pull request and critic
    findings, and the end of the agent's transcript. None when there is no such task."""
    from oxi_core.timeline import task_timeline

    found = ledger.task(task_id)
    if found is None:
        return None
    return task_timeline(ledger, paths, found, tail=TRANSCRIPT_TAIL)
