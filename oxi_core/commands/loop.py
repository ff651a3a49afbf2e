"""`oxi tick`, `oxi saturate`, `oxi probe` and `oxi shadow report`: running the loop."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

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

if TYPE_CHECKING:
    from oxi_core.config import OxiConfig
    from oxi_core.engine.engine import TickReport
    from oxi_core.models import Event

F = TypeVar("F", bound=Callable[..., Any])


def worker_options(function: F) -> F:
    function = click.option(
        "--real-claude", is_flag=True,
        help="The same as --worker claude (the spelling of oxi's original specification).",
    )(function)
    return click.option(
        "--worker", "worker", metavar="NAME", default=None,
        help="The configured agent that runs every task of this run ([roles] worker and "
             "routing.yaml stay as they are).",
    )(function)


def _config_for_run(state: CliState, worker: str | None, real_claude: bool) -> OxiConfig:
    from oxi_core.errors import OxiError

    config = state.config()
    if worker and real_claude and worker != "claude":
        raise OxiError(f"--real-claude asks for claude, --worker for {worker}",
                       hint="pass one of them")
    if real_claude:
        config.override_worker("claude", by_type=True)
    elif worker:
        config.override_worker(worker)
    return config


def add_commands(cli: click.Group) -> None:
    @cli.command(name="tick")
    @click.option("--dry-run", is_flag=True, help="Plan and print; change nothing.")
    @worker_options
    @json_option
    @pass_state
    def tick_command(state: CliState, dry_run: bool, worker: str | None, real_claude: bool,
                     as_json: bool) -> None:
        """One pass: ingest the roadmap, reap, observe PRs, dispatch ready items."""
        config = _config_for_run(state, worker, real_claude)
        if dry_run:
            from oxi_core.engine.dryrun import dry_run_plan

            plan, status = dry_run_plan(config)
            if as_json:
                emit_json("tick", {"tick": plan.as_json(), "status": status})
            else:
                _print_plan(plan)
            return
        from oxi_core.engine.engine import Engine

        engine = Engine(config)
        show_progress = not as_json and sys.stdout.isatty()
        if show_progress:
            import asyncio

            from oxi_core.engine.progress import run_with_progress

            report = asyncio.run(run_with_progress(engine))
        else:
            report = engine.run_once_blocking()
        from oxi_core.status import BaseBranch, status_report, status_summary

        config = engine.config
        if report.merged:  # compare the operator's checkout with the base as it is now
            from oxi_core.errors import GitError

            with contextlib.suppress(GitError):  # offline: the last fetch will do
                engine.fetch_origin(max_age_s=0)
        base = BaseBranch(config.paths.repo_root, config.policy.remote,
                          config.policy.base_branch)
        if as_json:
            status = status_report(engine.ledger, recent=0, base=base)
            report.in_flight = [row["task"] for row in status["in_flight"]]
            emit_json("tick", {"tick": report.as_json(), "status": status})
        else:
            # The closing lines need counts, not every task: the same cost at any roadmap size.
            from oxi_core.engine.progress import print_summary

            print_summary(report, status_summary(engine.ledger, base=base))

    @cli.command(name="saturate")
    @click.option("--concurrency", "-j", type=click.IntRange(min=1), default=None,
                  help="At most N agents at once (default: [engine] max_concurrent).")
    @click.option("--max-cost-per-day", type=click.FloatRange(min=0), default=None,
                  help="Daily budget in USD (default: [engine] budget_per_day_usd).")
    @click.option("--interval", type=click.FloatRange(min=0), default=None,
                  help="Seconds between ticks when no worker finishes sooner.")
    @worker_options
    @json_option
    @jsonl_option("tick that did something, then one when it stops")
    @pass_state
    def saturate_command(state: CliState, concurrency: int | None,
                         max_cost_per_day: float | None, interval: float | None,
                         worker: str | None, real_claude: bool, as_json: bool,
                         as_jsonl: bool) -> None:
        """Tick continuously until SIGTERM/SIGINT or the daily budget is spent."""
        import asyncio

        from oxi_core.engine.progress import tick_line, tick_record
        from oxi_core.engine.saturate import Saturate

        def on_tick(number: int, report: TickReport, outcomes: list[Event]) -> None:
            record = tick_record(number, report, outcomes)
            if record is None or as_json:
                return
            if as_jsonl:
                emit_json_line("saturate", {"kind": "tick", **record})
            else:
                click.echo(tick_line(record))

        config = _config_for_run(state, worker, real_claude)
        daemon = Saturate(config, concurrency=concurrency or config.policy.max_concurrent,
                          max_cost_per_day=max_cost_per_day, interval_s=interval,
                          on_tick=on_tick)
        result = asyncio.run(daemon.run())
        summary = {"stopped_by": result.stopped_by or "done", "ticks": result.ticks,
                   "dispatched": result.dispatched, "waited_for": result.waited_for}
        if as_json:
            emit_json("saturate", summary)
        elif as_jsonl:
            emit_json_line("saturate", {"kind": "stopped", **summary})
        else:
            click.echo(f"oxi saturate: stopped ({summary['stopped_by']}) after "
                       f"{result.ticks} ticks, {result.dispatched} dispatched; waited for "
                       f"{', '.join(result.waited_for) or 'no workers'}")

    @cli.command(name="probe")
    @json_option
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
            emit_json("probe", recommendation.as_json())
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

    @cli.group(name="shadow")
    def shadow_group() -> None:
        """Shadow runs: a second agent on every dispatch, observed only."""

    @shadow_group.command(name="report")
    @json_option
    @limit_option
    @pass_state
    def shadow_report_command(state: CliState, as_json: bool, limit: int | None) -> None:
        """The last pairs (50 unless -n says otherwise), agreement rate and cost delta."""
        from oxi_core.agentic.shadow import shadow_report

        report = shadow_report(state.ledger(), pairs=50 if limit is None else limit)
        if as_json:
            emit_json("shadow report", report)
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


def _print_plan(plan: TickReport) -> None:
    click.echo(f"dry run: capacity {plan.capacity}, in flight {len(plan.in_flight)}"
               + (" (PAUSED)" if plan.paused else ""))
    for change in plan.ingested:
        click.echo(f"ingest: {change.kind} {change.task_id}")
    for merged in plan.merged_on_base:
        click.echo(f"merged on {merged['on']}: {merged['task']} (commit {merged['commit'][:12]}); "
                   "recorded as merged, never dispatched")
    for warning in plan.warnings:
        click.echo(f"warning: {warning}")
    for entry in plan.decisions:
        reason = f" ({entry['reason']})" if entry["reason"] else ""
        click.echo(f"{entry['decision']:<9} {entry['task']:<8} {entry['title']}{reason}")
