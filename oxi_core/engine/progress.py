"""What a person at a terminal sees: live progress while agents work, then a summary."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import click

from oxi_core.status import status_report

if TYPE_CHECKING:
    from rich.table import Table

    from oxi_core.engine.engine import Engine, TickReport


def in_flight_table(engine: Engine) -> Table:
    """The live view: one row per task whose agent is working, from the ledger."""
    from rich.table import Table

    report = status_report(engine.ledger, recent=0)
    table = Table(title="oxi: in flight", expand=False)
    for column in ("task", "agent", "pid", "last event", "age s", "turns", "cost $"):
        table.add_column(column)
    for row in report["in_flight"]:
        table.add_row(row["task"], str(row["agent"]), str(row["pid"]),
                      str(row["last_event"]), str(row["last_event_age_s"]),
                      str(row["turns"]), f"{row['cost_usd']:.4f}")
    return table


async def run_with_progress(engine: Engine) -> TickReport:
    from rich.console import Console
    from rich.live import Live

    def render() -> Table:
        return in_flight_table(engine)

    console = Console(stderr=True)
    with Live(render(), console=console, refresh_per_second=4, transient=True) as live:
        job = asyncio.create_task(engine.run_once())
        while not job.done():
            live.update(render())
            await asyncio.wait({job}, timeout=0.5)
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
