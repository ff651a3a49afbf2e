"""What a person at a terminal sees: live progress while agents work, then a summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.table import Table

    from oxi_core.engine.engine import Engine, TickReport
    from oxi_core.models import Event


def in_flight_table(engine: Engine) -> Table:
    """The live view: one row per worker of this engine, from its agent's start to its pull
    request's merge (the critic's review included), with the cost its stream has shown."""
    import time

    from rich.table import Table

    table = Table(title="oxi: in flight", expand=False)
    for column in ("task", "agent", "pid", "doing", "last event", "age s", "turns", "cost $"):
        table.add_column(column)
    from oxi_core.tasks import TaskStatus

    # Only the tasks in flight: redrawn four times a second, whatever the roadmap's size.
    pids = {task.id: task.worker_pid for task in engine.ledger.tasks([TaskStatus.DISPATCHED])}
    now = time.monotonic()
    for task_id in sorted(engine.workers):
        progress = engine.progress.get(task_id)
        if progress is None:
            continue
        if progress.cost_usd is None:
            cost = "-"
        else:
            cost = f"{'' if progress.cost_final else '~'}{progress.cost_usd:.4f}"
        table.add_row(task_id, progress.agent or "-", str(pids.get(task_id) or "-"),
                      progress.phase, progress.last_event or "-",
                      f"{now - progress.last_event_at:.0f}", str(progress.turns), cost)
    return table


async def run_with_progress(engine: Engine) -> TickReport:
    """The tick under a live table on stderr; log lines print above it, never through it."""
    import asyncio
    import os
    import sys

    from rich.console import Console
    from rich.live import Live

    from oxi_core import log

    def render() -> Table:
        return in_flight_table(engine)

    console = Console(stderr=True)
    level = os.environ.get("OXI_LOG_LEVEL", "info")
    with Live(console=console, refresh_per_second=4, transient=True, redirect_stderr=True,
              get_renderable=render):
        # The logger writes to sys.stderr as it is now: Live's proxy, which prints above
        # the table (the stream it captured before would draw through it).
        log.configure(level=level, stream=sys.stderr)
        try:
            job = asyncio.create_task(engine.run_once())
            while not job.done():
                await asyncio.wait({job}, timeout=0.25)
        finally:
            log.configure(level=level, stream=sys.__stderr__)
    return job.result()


def print_summary(report: TickReport, status: dict[str, Any]) -> None:
    """The tick's outcome in a few lines: what it dispatched and what became of each (a task
    that failed at once says so, with the reason), merges, holds, failures, then totals."""
    for line in summary_lines(report):
        click.echo(line)
    behind = status.get("local_base_behind")
    if behind:
        click.echo(f"  note: {behind['message']}")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(status["counts"].items()))
    click.echo(f"  tasks: {counts or 'none'}")
    click.echo(f"  cost today ${status['cost_today_usd']:.4f}, "
               f"total ${status['cost_total_usd']:.4f}")


def summary_lines(report: TickReport) -> list[str]:
    outcomes = {o["task"]: o for o in report.outcomes}
    headline = ", ".join(part for part in (
        f"dispatched {', '.join(report.dispatched)}" if report.dispatched else "",
        f"merged {', '.join(report.merged)}" if report.merged else "",
        f"reaped {', '.join(r.task_id for r in report.reaped)}" if report.reaped else "",
        f"deferred {len(report.deferred)}" if report.deferred else "",
        f"held {', '.join(t for t, _ in report.held)}" if report.held else "",
        f"skipped {', '.join(t for t, _ in report.skipped)}" if report.skipped else "",
        "PAUSED" if report.paused else "",
        "daily budget reached" if report.budget_reached else "",
    ) if part)
    lines = ["oxi tick: " + (headline or "nothing to do")]
    for task_id in report.dispatched:
        outcome = outcomes.get(task_id)
        if outcome is None or outcome["status"] == "merged":
            continue
        reason = f": {outcome['reason']}" if outcome["reason"] else ""
        pr = f" (PR #{outcome['pr']})" if outcome["pr"] else ""
        lines.append(f"  {task_id} {outcome['status']}{pr}{reason}")
        if outcome["status"] in ("failed", "retrying", "planned"):
            lines.append(f"    see `oxi task show {task_id}`")
    for task_id, reason in report.held:
        lines.append(f"  {task_id} held: {reason} (`oxi task release {task_id}` to "
                     "dispatch it anyway)")
    for task_id, reason in report.skipped:
        lines.append(f"  {task_id} skipped: {reason}")
    for phase, error in report.failed_phases:
        lines.append(f"  phase {phase} failed: {error}")
    for warning in report.warnings:
        lines.append(f"  warning: {warning}")
    return lines


# How a worker's end, recorded between ticks, reads in saturate's per-tick line.
_OUTCOME_WORDS = {"task_merged": "merged", "task_failed": "failed",
                  "retry_scheduled": "will retry", "task_reopened": "rejected by the critic",
                  "pr_conflicted": "conflicted", "task_cancelled": "cancelled"}


def tick_record(number: int, report: TickReport, outcomes: list[Event]) -> dict[str, Any] | None:
    """What one tick of `oxi saturate` did (None when it did nothing worth a line): what it
    dispatched, held, skipped or reaped, and what workers that ended since the last tick came
    to, with the reasons."""
    ended = [{"task": e.task_id, "outcome": _OUTCOME_WORDS.get(e.type, e.type),
              "reason": str(e.payload.get("reason") or "")} for e in outcomes]
    busy = (report.dispatched or report.held or report.skipped or report.reaped
            or report.failed_phases or report.budget_reached or ended)
    if not busy:
        return None
    return {"tick": number, "dispatched": report.dispatched,
            "held": [{"task": t, "reason": r} for t, r in report.held],
            "skipped": [{"task": t, "reason": r} for t, r in report.skipped],
            "reaped": [r.task_id for r in report.reaped],
            "ended": ended,
            "failed_phases": [{"phase": p, "error": e} for p, e in report.failed_phases],
            "budget_reached": report.budget_reached}


def tick_line(record: dict[str, Any]) -> str:
    parts = []
    if record["dispatched"]:
        parts.append("dispatched " + ", ".join(record["dispatched"]))
    for end in record["ended"]:
        reason = f": {end['reason']}" if end["reason"] and end["outcome"] != "merged" else ""
        parts.append(f"{end['task']} {end['outcome']}{reason}")
    parts += [f"{h['task']} held: {h['reason']}" for h in record["held"]]
    parts += [f"{s['task']} skipped: {s['reason']}" for s in record["skipped"]]
    if record["reaped"]:
        parts.append("reaped " + ", ".join(record["reaped"]))
    parts += [f"phase {f['phase']} failed: {f['error']}" for f in record["failed_phases"]]
    if record["budget_reached"]:
        parts.append("daily budget reached")
    from datetime import datetime

    return f"{datetime.now().strftime('%H:%M:%S')} tick {record['tick']}: " + "; ".join(parts)
