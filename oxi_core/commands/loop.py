"""`oxi tick`, `oxi status`, `oxi ledger tail`, `oxi pause|resume`, `oxi task ...`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from oxi_core.commands.common import CliState, emit_json, pass_state

if TYPE_CHECKING:
    from oxi_core.engine.engine import Engine


def _engine(state: CliState) -> Engine:
    from oxi_core.engine.engine import Engine

    return Engine(state.config())


def add_commands(cli: click.Group) -> None:
    @cli.command(name="tick")
    @click.option("--dry-run", is_flag=True, help="Plan and print; change nothing.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @pass_state
    def tick_command(state: CliState, dry_run: bool, as_json: bool) -> None:
        """One pass: ingest the roadmap, reap, observe PRs, dispatch ready items."""
        import asyncio

        if dry_run:
            from oxi_core.engine.dryrun import dry_run_plan

            plan = dry_run_plan(state.config())
            if as_json:
                emit_json(plan)
            else:
                _print_plan(plan)
            return
        engine = _engine(state)
        show_progress = not as_json and sys.stdout.isatty()
        if show_progress:
            from oxi_core.engine.progress import run_with_progress

            report = asyncio.run(run_with_progress(engine))
        else:
            report = asyncio.run(engine.run_once())
        if as_json:
            from oxi_core.status import status_report

            emit_json({"tick": report.as_json(), "status": status_report(engine.ledger)})
        else:
            from oxi_core.engine.progress import print_summary

            print_summary(engine, report)

    @cli.command(name="status")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("-n", "recent", default=10, show_default=True, help="Recent events to show.")
    @pass_state
    def status_command(state: CliState, as_json: bool, recent: int) -> None:
        """Tasks by status, what is in flight, cost today and in total, recent events."""
        from oxi_core.ledger import Ledger
        from oxi_core.status import status_report

        config = state.config(secrets=False)
        report = status_report(Ledger(config.paths.ledger), recent=recent)
        if as_json:
            emit_json(report)
            return
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items())) or "no tasks"
        click.echo(f"tasks: {counts}")
        click.echo(f"cost:  ${report['cost_today_usd']:.4f} today, "
                   f"${report['cost_total_usd']:.4f} in total")
        if report["paused"]:
            click.echo("PAUSED (oxi resume to continue)")
        for row in report["in_flight"]:
            click.echo(f"in flight: {row['task']} {row['agent']} pid {row['pid']} "
                       f"last event {row['last_event']} {row['last_event_age_s']}s ago")
        for row in report["retrying"]:
            click.echo(f"retrying:  {row['task']} attempt {row['attempt']} due {row['due']}: "
                       f"{row['last_error']}")
        for row in report["tasks"]:
            click.echo(f"  {row['id']:<8} {row['status']:<11} {row['title']}")
        for event in report["recent_events"]:
            click.echo(f"  #{event['id']} {event['ts']} {event['type']} {event['task'] or ''}")

    @cli.group(name="ledger")
    def ledger_group() -> None:
        """Read the ledger."""

    @ledger_group.command(name="tail")
    @click.option("-n", "count", default=20, show_default=True, help="How many events.")
    @click.option("--json", "as_json", is_flag=True, help="JSON lines.")
    @pass_state
    def ledger_tail(state: CliState, count: int, as_json: bool) -> None:
        """The last N events, oldest first."""
        import json

        from oxi_core.ledger import Ledger

        ledger = Ledger(state.config(secrets=False).paths.ledger)
        events = list(reversed(ledger.events(newest_first=True, limit=count)))
        for event in events:
            if as_json:
                click.echo(json.dumps({"id": event.id, "ts": event.ts, "type": event.type,
                                       "task_id": event.task_id, "session_id": event.session_id,
                                       "cost_usd": event.cost_usd, "payload": event.payload},
                                      sort_keys=True))
            else:
                cost = f" ${event.cost_usd:.4f}" if event.cost_usd else ""
                click.echo(f"#{event.id} {event.ts} {event.type} {event.task_id or '-'}{cost} "
                           f"{json.dumps(event.payload, sort_keys=True)[:160]}")

    @ledger_group.command(name="backup")
    @click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
    @pass_state
    def ledger_backup(state: CliState, dest: Path) -> None:
        """Copy the ledger to DEST, consistently, even while oxi runs."""
        from oxi_core.ledger import Ledger

        if dest.exists():
            raise click.ClickException(f"{dest} exists; a backup never overwrites a file")
        with Ledger(state.config(secrets=False).paths.ledger) as ledger:
            dest.parent.mkdir(parents=True, exist_ok=True)
            ledger.backup(dest)
            events, tasks = ledger.count_events(), len(ledger.tasks())
        click.echo(f"backed up {ledger.path} to {dest} ({events} events, {tasks} tasks); "
                   f"`oxi ledger restore {dest}` puts it back")

    @ledger_group.command(name="restore")
    @click.argument("backup", type=click.Path(path_type=Path, dir_okay=False))
    @click.option("--force", is_flag=True,
                  help="Replace a ledger that still holds events (they are lost).")
    @pass_state
    def ledger_restore(state: CliState, backup: Path, force: bool) -> None:
        """Replace the ledger with BACKUP (written by `oxi ledger backup`). Stop oxi first."""
        from oxi_core.engine.pidfile import PidFile
        from oxi_core.errors import LedgerError
        from oxi_core.ledger import Ledger
        from oxi_core.ledger.backup import restore

        paths = state.config(secrets=False).paths
        if not force:
            try:
                with Ledger(paths.ledger) as current:
                    held = current.count_events()
            except LedgerError:
                held = 0  # empty, replaced or unreadable: what a restore is for
            if held:
                raise click.ClickException(
                    f"{paths.ledger} holds {held} events, which the restore would lose; "
                    "back it up first (`oxi ledger backup PATH`), then pass --force")
        daemon = PidFile(paths.saturate_pid)
        daemon.acquire()  # refuses while `oxi saturate` runs; keeps one from starting meanwhile
        try:
            restore(backup, paths.ledger)
        finally:
            daemon.release()
        click.echo(f"restored {paths.ledger} from {backup}")

    @cli.command(name="pause")
    @pass_state
    def pause_command(state: CliState) -> None:
        """Killswitch: stop dispatching new work (in-flight workers finish)."""
        from oxi_core.engine.engine import PAUSED_KEY
        from oxi_core.ledger import Ledger
        from oxi_core.ledger import events as ev

        ledger = Ledger(state.config(secrets=False).paths.ledger)
        ledger.state_set(PAUSED_KEY, ledger.now_iso(), event_type=ev.ENGINE_PAUSED)
        click.echo("paused: tick and saturate dispatch nothing until `oxi resume`")

    @cli.command(name="resume")
    @pass_state
    def resume_command(state: CliState) -> None:
        """Undo `oxi pause`."""
        from oxi_core.engine.engine import PAUSED_KEY
        from oxi_core.ledger import Ledger
        from oxi_core.ledger import events as ev

        ledger = Ledger(state.config(secrets=False).paths.ledger)
        ledger.state_set(PAUSED_KEY, None, event_type=ev.ENGINE_RESUMED)
        click.echo("resumed")

    @cli.group(name="task")
    def task_group() -> None:
        """Operator actions on one task."""

    @task_group.command(name="release")
    @click.argument("task_id")
    @pass_state
    def task_release(state: CliState, task_id: str) -> None:
        """Release a task held by a gate (over budget); it dispatches past the cap."""
        from oxi_core.ledger import Ledger
        from oxi_core.ledger import events as ev
        from oxi_core.tasks import TaskStatus

        ledger = Ledger(state.config(secrets=False).paths.ledger)
        moved = ledger.transition(task_id, TaskStatus.PLANNED, event_type=ev.TASK_RELEASED,
                                  payload={"by": "operator"}, expect=[TaskStatus.HELD],
                                  budget_released=True, held_reason=None)
        if moved is None:
            raise click.ClickException(f"{task_id} is not held")
        click.echo(f"{task_id} released")

    @task_group.command(name="retry")
    @click.argument("task_id")
    @pass_state
    def task_retry(state: CliState, task_id: str) -> None:
        """Re-plan a failed or abandoned task: a new round of attempts (their numbers go on)."""
        from oxi_core.ledger import Ledger
        from oxi_core.ledger import events as ev
        from oxi_core.tasks import TaskStatus

        ledger = Ledger(state.config(secrets=False).paths.ledger)
        moved = ledger.transition(task_id, TaskStatus.PLANNED,
                                  event_type=ev.TASK_RETRY_REQUESTED, payload={"by": "operator"},
                                  expect=[TaskStatus.FAILED, TaskStatus.ABANDONED],
                                  last_error=None, round_start=_attempts_so_far(ledger, task_id))
        if moved is None:
            raise click.ClickException(f"{task_id} has neither failed nor been abandoned")
        click.echo(f"{task_id} planned again")


def _attempts_so_far(ledger: Any, task_id: str) -> int:
    """Where a new round of attempts starts: attempt numbers never repeat (a result is recorded
    once per attempt number)."""
    task = ledger.task(task_id)
    if task is None:
        raise click.ClickException(f"no task {task_id} in the ledger")
    return int(task.attempts)


def _print_plan(plan: dict[str, Any]) -> None:
    click.echo(f"capacity {plan['capacity']}, in flight {len(plan['in_flight'])}"
               + (" (PAUSED)" if plan["paused"] else ""))
    for change in plan["ingest"]:
        click.echo(f"ingest: {change['kind']} {change['task']}")
    for merged in plan["merged_on_base"]:
        click.echo(f"merged on {merged['on']}: {merged['task']} (commit {merged['commit'][:12]}); "
                   "recorded as merged, never dispatched")
    for warning in plan["warnings"]:
        click.echo(f"warning: {warning}")
    for entry in plan["dispatch"]:
        reason = f" ({entry['reason']})" if entry["reason"] else ""
        click.echo(f"{entry['decision']:<9} {entry['task']:<8} {entry['title']}{reason}")


def add_daemon_commands(cli: click.Group) -> None:
    @cli.command(name="saturate")
    @click.option("--concurrency", "-n", type=click.IntRange(min=1), default=None,
                  help="At most N workers in flight (default: [engine] max_concurrent).")
    @click.option("--max-cost-per-day", type=click.FloatRange(min=0), default=None,
                  help="Daily budget in USD (default: [engine] budget_per_day_usd).")
    @click.option("--interval", type=click.FloatRange(min=0), default=None,
                  help="Seconds between ticks when no worker finishes sooner.")
    @pass_state
    def saturate_command(state: CliState, concurrency: int | None,
                         max_cost_per_day: float | None, interval: float | None) -> None:
        """Run ticks continuously until SIGTERM/SIGINT or the daily budget is spent."""
        import asyncio

        from oxi_core.engine.saturate import Saturate

        config = state.config()
        daemon = Saturate(config, concurrency=concurrency or config.policy.max_concurrent,
                          max_cost_per_day=max_cost_per_day, interval_s=interval)
        result = asyncio.run(daemon.run())
        click.echo(f"oxi saturate: stopped ({result.stopped_by or 'done'}) after {result.ticks} "
                   f"ticks, {result.dispatched} dispatched; waited for "
                   f"{', '.join(result.waited_for) or 'no workers'}")

    @cli.command(name="probe")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("--ceiling", type=click.IntRange(min=1), default=None,
                  help="The most workers to allow (default: [engine] max_concurrent).")
    @pass_state
    def probe_command(state: CliState, as_json: bool, ceiling: int | None) -> None:
        """How many workers this host can take now: RAM, CPU load, plan tier, ceiling."""
        from oxi_core.engine.probe import recommend_concurrency

        policy = state.config(secrets=False).policy
        recommendation = recommend_concurrency(ceiling=ceiling or policy.max_concurrent,
                                               plan_tier=policy.plan_tier)
        if as_json:
            emit_json(recommendation.as_json())
            return
        readings = recommendation.readings
        click.echo(f"ram envelope:       {recommendation.ram_envelope} "
                   f"({readings.available_ram_bytes / 2**30:.1f} GiB available)")
        click.echo(f"cpu envelope:       {recommendation.cpu_envelope} "
                   f"({readings.cpu_count} CPUs, load {readings.load_avg_5min:.2f})")
        click.echo(f"plan-tier envelope: {recommendation.plan_tier_envelope or 'unlimited'} "
                   f"({policy.plan_tier})")
        click.echo(f"ceiling:            {recommendation.ceiling}")
        click.echo(f"recommended:        {recommendation.recommended}")


def add_shadow_commands(cli: click.Group) -> None:
    @cli.group(name="shadow")
    def shadow_group() -> None:
        """Shadow runs: a second agent on every dispatch, observed only (T2-35)."""

    @shadow_group.command(name="report")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("-n", "pairs", default=50, show_default=True, help="Pairs to include.")
    @pass_state
    def shadow_report_command(state: CliState, as_json: bool, pairs: int) -> None:
        """The last pairs, the agreement rate and the cost delta (shadow minus primary)."""
        from oxi_core.agentic.shadow import shadow_report
        from oxi_core.ledger import Ledger

        report = shadow_report(Ledger(state.config(secrets=False).paths.ledger), pairs=pairs)
        if as_json:
            emit_json(report)
            return
        if not report["count"]:
            click.echo("no shadow pairs yet (set OXI_AGENTIC_SHADOW or [roles] shadow)")
            return
        click.echo(f"{report['count']} pairs, agreement {report['agreement_rate']:.0%}, "
                   f"cost delta ${report['cost_delta_usd']:+.4f} "
                   f"(primary ${report['primary_cost_usd']:.4f}, "
                   f"shadow ${report['shadow_cost_usd']:.4f})")
        for pair in report["pairs"]:
            mark = "=" if pair["shape_match"] else "≠"
            click.echo(f"  {pair['ts'][:19]} {pair['task']:<8} "
                       f"{pair['primary']['agent']}:{pair['primary']['classification']} {mark} "
                       f"{pair['shadow']['agent']}:{pair['shadow']['classification']} "
                       f"Δ${pair['cost_delta_usd']:+.4f}")
