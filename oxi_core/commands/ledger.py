"""`oxi status`, `oxi ledger tail|path`, and the killswitch `oxi pause|resume`.

None of these builds a plugin or reads a secret: they find the ledger from oxi.toml's
[adapter] alone, so they work while the rest of oxi.toml is broken (see oxi_core/locate.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from oxi_core.commands.common import (
    CliState,
    emit_json,
    emit_json_line,
    json_option,
    jsonl_option,
    limit_option,
    pass_state,
)


def add_commands(cli: click.Group) -> None:
    @cli.command(name="status")
    @json_option
    @limit_option
    @pass_state
    def status_command(state: CliState, as_json: bool, limit: int | None) -> None:
        """Tasks by status, what is in flight, held or failing and why, cost, recent events."""
        from oxi_core.status import status_report

        report = status_report(state.ledger(), recent=10 if limit is None else limit,
                               base=state.located().base)
        if as_json:
            emit_json("status", report)
            return
        print_status(report)

    @cli.group(name="ledger")
    def ledger_group() -> None:
        """Read the ledger (.oxi/oxi.db, one SQLite file)."""

    @ledger_group.command(name="tail")
    @limit_option
    @json_option
    @jsonl_option("event")
    @pass_state
    def ledger_tail(state: CliState, limit: int | None, as_json: bool, as_jsonl: bool) -> None:
        """The last events, oldest first (20 unless -n says otherwise)."""
        import json

        ledger = state.ledger()
        events = list(reversed(ledger.events(newest_first=True,
                                             limit=20 if limit is None else limit)))
        rows = [event_json(event) for event in events]
        if as_json:
            emit_json("ledger tail", {"events": rows})
            return
        for row in rows:
            if as_jsonl:
                emit_json_line("ledger tail", {"event": row})
                continue
            cost = f" ${row['cost_usd']:.4f}" if row["cost_usd"] else ""
            click.echo(f"#{row['id']} {row['ts']} {row['type']} {row['task_id'] or '-'}{cost} "
                       f"{json.dumps(row['payload'], sort_keys=True)[:160]}")

    @ledger_group.command(name="path")
    @json_option
    @pass_state
    def ledger_path(state: CliState, as_json: bool) -> None:
        """Where the ledger is (open it with sqlite3, sqlite-utils or Datasette)."""
        located = state.located()
        path = located.paths.ledger
        if as_json:
            emit_json("ledger path", {"path": str(path), "exists": path.is_file(),
                                      "config": str(located.config_path or "")})
            return
        click.echo(str(path))

    @ledger_group.command(name="backup")
    @click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
    @json_option
    @pass_state
    def ledger_backup(state: CliState, dest: Path, as_json: bool) -> None:
        """Copy the ledger to DEST, consistently, even while oxi runs."""
        from oxi_core.errors import OxiError

        if dest.exists():
            raise OxiError(f"{dest} exists; a backup never overwrites a file",
                           hint="name a new file")
        ledger = state.ledger()
        dest.parent.mkdir(parents=True, exist_ok=True)
        ledger.backup(dest)
        events, tasks = ledger.count_events(), len(ledger.tasks())
        if as_json:
            emit_json("ledger backup", {"ledger": str(ledger.path), "backup": str(dest),
                                        "events": events, "tasks": tasks})
            return
        click.echo(f"backed up {ledger.path} to {dest} ({events} events, {tasks} tasks); "
                   f"`oxi ledger restore {dest}` puts it back")

    @ledger_group.command(name="restore")
    @click.argument("backup", type=click.Path(path_type=Path, dir_okay=False))
    @click.option("--force", is_flag=True,
                  help="Replace a ledger that still holds events (they are lost).")
    @json_option
    @pass_state
    def ledger_restore(state: CliState, backup: Path, force: bool, as_json: bool) -> None:
        """Replace the ledger with BACKUP (written by `oxi ledger backup`). Stop oxi first."""
        from oxi_core.engine.pidfile import PidFile
        from oxi_core.errors import LedgerError, OxiError
        from oxi_core.ledger import Ledger
        from oxi_core.ledger.backup import restore

        paths = state.located().paths
        if not force:
            try:
                with Ledger(paths.ledger) as current:
                    held = current.count_events()
            except LedgerError:
                held = 0  # empty, replaced or unreadable: what a restore is for
            if held:
                raise OxiError(
                    f"{paths.ledger} holds {held} events, which the restore would lose",
                    hint="back it up first (`oxi ledger backup PATH`), then pass --force")
        daemon = PidFile(paths.saturate_pid)
        daemon.acquire()  # refuses while `oxi saturate` runs; keeps one from starting meanwhile
        try:
            restore(backup, paths.ledger)
        finally:
            daemon.release()
        if as_json:
            emit_json("ledger restore", {"ledger": str(paths.ledger), "backup": str(backup)})
            return
        click.echo(f"restored {paths.ledger} from {backup}")

    @cli.command(name="pause")
    @click.option("--reason", default="", help="Why (recorded, and sent to notifiers).")
    @json_option
    @pass_state
    def pause_command(state: CliState, reason: str, as_json: bool) -> None:
        """The killswitch: dispatch nothing new (in-flight workers finish)."""
        from oxi_core.engine.engine import PAUSED_KEY
        from oxi_core.ledger import events as ev

        ledger = state.ledger()
        already = ledger.state_get(PAUSED_KEY) is not None
        if not already:
            ledger.state_set(PAUSED_KEY, ledger.now_iso(), event_type=ev.ENGINE_PAUSED,
                             payload={"by": "operator", "reason": reason or "oxi pause"})
        # Record first, then tell the notifiers: a broken plugin must never stop the pause.
        notified = "already paused" if already else _notify_last(state, ev.ENGINE_PAUSED)
        if as_json:
            emit_json("pause", {"paused": True, "already": already,
                                "ledger": str(ledger.path), "notified": notified})
            return
        click.echo(f"paused: tick and saturate dispatch nothing until `oxi resume` "
                   f"(ledger {ledger.path})")
        if notified not in ("ok", "already paused"):
            click.echo(f"oxi: warning: notifiers not reached: {notified}", err=True)

    @cli.command(name="resume")
    @json_option
    @pass_state
    def resume_command(state: CliState, as_json: bool) -> None:
        """Undo `oxi pause` (or a pause oxi made itself: `oxi status` says why)."""
        from oxi_core.engine.engine import PAUSED_KEY
        from oxi_core.ledger import events as ev

        ledger = state.ledger()
        was_paused = ledger.state_get(PAUSED_KEY) is not None
        if was_paused:
            ledger.state_set(PAUSED_KEY, None, event_type=ev.ENGINE_RESUMED,
                             payload={"by": "operator"})
        # As for the pause: recorded first, then the notifiers (a broken one never stops it).
        notified = _notify_last(state, ev.ENGINE_RESUMED) if was_paused else "not paused"
        if as_json:
            emit_json("resume", {"paused": False, "was_paused": was_paused,
                                 "ledger": str(ledger.path), "notified": notified})
            return
        click.echo("resumed" if was_paused else "not paused; nothing to resume")
        if notified not in ("ok", "not paused"):
            click.echo(f"oxi: warning: notifiers not reached: {notified}", err=True)


def _notify_last(state: CliState, event_type: str) -> str:
    """Hand the newest ``event_type`` event to the configured notifiers: "ok", or why not."""
    from oxi_core.builtins.notifiers import deliver
    from oxi_core.errors import OxiError

    ledger = state.ledger()
    found = ledger.events(types=[event_type], newest_first=True, limit=1)
    if not found:
        return "ok"
    try:
        config = state.config(secrets=False)  # a notifier whose secret is unset is skipped
    except OxiError as error:
        return str(error)
    config.context.use_ledger(ledger)
    failed = deliver(config.instances["notifiers"], ledger, found[0])
    return "ok" if not failed else "; ".join(failed)


def event_json(event: Any) -> dict[str, Any]:
    return {"id": event.id, "ts": event.ts, "type": event.type, "task_id": event.task_id,
            "session_id": event.session_id, "cost_usd": event.cost_usd,
            "payload": dict(event.payload)}


def print_status(report: dict[str, Any]) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items())) or "no tasks"
    click.echo(f"tasks: {counts}")
    click.echo(f"cost:  ${report['cost_today_usd']:.4f} today, "
               f"${report['cost_total_usd']:.4f} in total")
    if report["paused"]:
        why = report.get("paused_reason") or ""
        click.echo(f"PAUSED{f': {why}' if why else ''} (`oxi resume` to continue)")
    behind = report.get("local_base_behind")
    if behind:
        click.echo(f"note: {behind['message']}")
    forge = report.get("forge_requests") or {}
    last, today = forge.get("last_tick"), forge.get("today") or {}
    if last is not None:
        limits = "; ".join(f"{name} {seen.get('remaining')}/{seen.get('limit')} left"
                           for name, seen in (last.get("rate_limit") or {}).items())
        click.echo(f"forge: {last['forge']}: {last['requests']} requests last tick "
                   f"({last['counted']} counted), {today.get('requests', 0)} today "
                   f"({today.get('counted', 0)} counted)" + (f"; {limits}" if limits else ""))
    for row in report["in_flight"]:
        last = row["last_event"] or "starting"
        age = "" if row["last_event_age_s"] is None else f" {row['last_event_age_s']}s ago"
        click.echo(f"in flight: {row['task']} {row['agent']} pid {row['pid'] or '-'} "
                   f"last event {last}{age}")
    for row in report["retrying"]:
        click.echo(f"retrying:  {row['task']} attempt {row['attempt']} due {row['due']}: "
                   f"{row['last_error']}")
    for row in report["held"]:
        click.echo(f"held:      {row['task']}: {row['reason']} (`oxi task release "
                   f"{row['task']}` to dispatch it anyway)")
    for row in report["tasks"]:
        why = ""
        if row["status"] in ("failed", "skipped") and row["last_error"]:
            why = f"  ({row['last_error']})"
        click.echo(f"  {row['id']:<8} {row['status']:<11} {row['title']}{why}")
    for event in report["recent_events"]:
        click.echo(f"  #{event['id']} {event['ts']} {event['type']} {event['task'] or ''}")
