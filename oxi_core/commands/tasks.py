"""`oxi task list|show|release|retry`: one task at a time, from the ledger alone."""

from __future__ import annotations

from typing import Any

import click

from oxi_core.commands.common import (
    CliState,
    emit_json,
    json_option,
    limit_option,
    pass_state,
)


def add_commands(cli: click.Group) -> None:
    @cli.group(name="task")
    def task_group() -> None:
        """See what happened to a task, and act on it."""

    @task_group.command(name="list")
    @click.option("--status", "statuses", multiple=True, metavar="STATUS",
                  help="Only tasks with this status (repeat for several).")
    @limit_option
    @json_option
    @pass_state
    def task_list(state: CliState, statuses: tuple[str, ...], limit: int | None,
                  as_json: bool) -> None:
        """Every task: status, attempts, cost, pull request, and why it is held or failing."""
        from oxi_core.timeline import task_row

        tasks = state.ledger().tasks(list(statuses) or None)
        rows = [task_row(t) for t in tasks][: limit if limit is not None else None]
        if as_json:
            emit_json("task list", {"tasks": rows})
            return
        if not rows:
            click.echo("no tasks" + (f" with status {', '.join(statuses)}" if statuses else ""))
        for row in rows:
            pr = f"#{row['pr']}" if row["pr"] else "-"
            why = f"  ({row['reason']})" if row["reason"] else ""
            click.echo(f"{row['id']:<8} {row['status']:<11} {row['attempts']:>2} att "
                       f"${row['cost_usd']:<8.4f} {pr:<5} {row['title']}{why}")

    @task_group.command(name="show")
    @click.argument("task_id")
    @click.option("--tail", type=click.IntRange(min=0), default=20, show_default=True,
                  help="Lines of the last attempt's transcript to show.")
    @json_option
    @pass_state
    def task_show(state: CliState, task_id: str, tail: int, as_json: bool) -> None:
        """What happened to one task: each attempt's outcome, reason, cost (and where the
        figure came from), pull request, critic findings and worktree, and the end of what
        the agent said."""
        from oxi_core.errors import LedgerError
        from oxi_core.timeline import task_timeline

        ledger = state.ledger()
        task = ledger.task(task_id)
        if task is None:
            raise LedgerError(f"no task {task_id} in the ledger",
                              hint="`oxi task list` shows the tasks it has")
        timeline = task_timeline(ledger, state.located().paths, task, tail=tail)
        if as_json:
            emit_json("task show", timeline)
            return
        print_timeline(timeline)

    @task_group.command(name="release")
    @click.argument("task_id")
    @json_option
    @pass_state
    def task_release(state: CliState, task_id: str, as_json: bool) -> None:
        """Release a task a gate held (over budget): it dispatches past the cap."""
        from oxi_core.errors import OxiError
        from oxi_core.ledger import events as ev
        from oxi_core.tasks import TaskStatus

        moved = state.ledger().transition(
            task_id, TaskStatus.PLANNED, event_type=ev.TASK_RELEASED,
            payload={"by": "operator"}, expect=[TaskStatus.HELD], budget_released=True,
            held_reason=None)
        if moved is None:
            raise OxiError(f"{task_id} is not held", hint=f"`oxi task show {task_id}` says why")
        if as_json:
            emit_json("task release", {"task": task_id, "status": str(moved.status)})
            return
        click.echo(f"{task_id} released")

    @task_group.command(name="retry")
    @click.argument("task_id")
    @json_option
    @pass_state
    def task_retry(state: CliState, task_id: str, as_json: bool) -> None:
        """Plan a failed, skipped or abandoned task again: a new round of attempts (their
        numbers go on)."""
        from oxi_core.errors import LedgerError, OxiError
        from oxi_core.ledger import events as ev
        from oxi_core.tasks import TaskStatus

        ledger = state.ledger()
        task = ledger.task(task_id)
        if task is None:
            raise LedgerError(f"no task {task_id} in the ledger",
                              hint="`oxi task list` shows the tasks it has")
        # Attempt numbers never repeat (a result is recorded once per attempt number).
        moved = ledger.transition(
            task_id, TaskStatus.PLANNED, event_type=ev.TASK_RETRY_REQUESTED,
            payload={"by": "operator"},
            expect=[TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.ABANDONED],
            last_error=None, round_start=task.attempts)
        if moved is None:
            raise OxiError(f"{task_id} has not failed, been skipped or been abandoned",
                           hint=f"`oxi task show {task_id}` says where it stands")
        if as_json:
            emit_json("task retry", {"task": task_id, "status": str(moved.status)})
            return
        click.echo(f"{task_id} planned again")


def print_timeline(timeline: dict[str, Any]) -> None:
    from oxi_core.engine.transcripts import describe

    task = timeline["task"]
    click.echo(f"{task['id']} · {task['title']}")
    click.echo(f"  status {task['status']}, {task['attempts']} attempts, "
               f"${task['cost_usd']:.4f} in all" + (f", PR #{task['pr']}" if task["pr"] else ""))
    if task["reason"]:
        click.echo(f"  why: {task['reason']}")
    for event in timeline["before_dispatch"]:
        if event["type"] in ("task_held", "task_deferred", "task_skipped", "task_released"):
            click.echo(f"  {event['ts'][:19]} {event['type']}: {event['detail']}")
    for attempt in timeline["attempts"]:
        click.echo(f"attempt {attempt['attempt']} ({attempt['claimed_at'][:19]}): "
                   f"{attempt['outcome']}" + (f": {attempt['reason']}" if attempt["reason"]
                                              else ""))
        route = attempt["route"]
        if route["rule"]:
            click.echo(f"  routed to {route['agent']} {route['model'] or ''} by routing.yaml "
                       f"rule {route['rule']}".replace("  by", " by"))
        for fallback in route["fallbacks"]:
            click.echo(f"  fell back from {fallback['from']} to {fallback['to']} "
                       f"{fallback['model'] or ''} ({fallback['reason']})".replace("  (", " ("))
        who = " ".join(str(x) for x in (attempt["agent"], attempt["model"]) if x)
        if attempt["classification"]:
            click.echo(f"  agent {who or '?'}: {attempt['classification']}, "
                       f"{attempt['turns'] or 0} turns, {attempt['duration_s'] or 0}s")
        source = f" ({attempt['cost_source']})" if attempt["cost_source"] else ""
        click.echo(f"  cost ${attempt['cost_usd']:.4f}{source}")
        if attempt["worktree"]:
            click.echo(f"  worktree {attempt['worktree']} (branch {attempt['branch']})")
        if attempt["pr"]:
            click.echo(f"  pull request #{attempt['pr']}")
        for verdict in attempt["critic"]:
            click.echo(f"  critic {verdict['critic']}: {verdict['verdict']}")
            for reason in verdict["reasons"]:
                for line in str(reason).splitlines()[:12]:
                    click.echo(f"    {line}")
    transcript = timeline["transcript"]
    if transcript is None:
        click.echo("not dispatched yet")
    elif not transcript["exists"]:
        click.echo(f"no transcript for attempt {transcript['attempt']} (the agent printed "
                   f"nothing, or it was pruned): {transcript['path']}")
    else:
        click.echo(f"transcript tail (attempt {transcript['attempt']}, {transcript['path']}):")
        for record in transcript["tail"]:
            click.echo(f"  {describe(record)}")
