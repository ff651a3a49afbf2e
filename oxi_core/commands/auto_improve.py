"""`oxi auto-improve scan|status|proposals|accept|reject|unpause` (docs/auto-improve.md).

Imports only click here: the scan's model, numpy and sqlite-vec load inside ``scan``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from oxi_core.commands.common import CliState, emit_json, json_option, pass_state

if TYPE_CHECKING:
    from oxi_core.auto_improve.store import Proposal
    from oxi_core.config import OxiConfig
    from oxi_core.ledger import Ledger


def _open(state: CliState, *, secrets: bool = False) -> tuple[OxiConfig, Ledger]:
    config = state.config(secrets=secrets)
    return config, config.ledger


def _proposal_line(proposal: Proposal) -> str:
    return f"{proposal.id:<8} {proposal.status:<9} {proposal.title} — {proposal.subtitle}"


def add_commands(cli: click.Group) -> None:
    @cli.group(name="auto-improve")
    def group() -> None:
        """Outside ideas -> ranked, judged, deduplicated roadmap proposals."""

    @group.command(name="scan")
    @click.option("--once-per-day", is_flag=True,
                  help="Do nothing when a scan already finished today (what schedules run).")
    @json_option
    @pass_state
    def scan_command(state: CliState, once_per_day: bool, as_json: bool) -> None:
        """Fetch every source, rank, judge, dedup; stage proposals and write the digest."""
        from oxi_core.auto_improve.service import run_scan

        config, ledger = _open(state)
        report = run_scan(config, ledger, once_per_day=once_per_day)
        if as_json:
            emit_json("auto-improve scan", report.as_json())
            return
        if report.skipped:
            click.echo(f"scan skipped: {report.skipped}")
            return
        fetched = ", ".join(f"{n} {c}" for n, c in report.fetched.items()) or "nothing"
        click.echo(f"fetched: {fetched}; ranked {report.ranked}; "
                   f"proposals {len(report.emitted)}; dedup {len(report.dedup)}; "
                   f"fabricated {len(report.fabricated)}; held {len(report.held)}")
        for failure in report.failures:
            click.echo(f"source failed: {failure['source']}: {failure['reason']}")
        for proposal in report.emitted:
            click.echo(f"staged {_proposal_line(proposal)}")
        if report.paused:
            click.echo("auto-improve paused itself: too few proposals were accepted "
                       "(oxi auto-improve unpause)")
        click.echo(f"digest: {report.digest}")

    @group.command(name="status")
    @json_option
    @pass_state
    def status_command(state: CliState, as_json: bool) -> None:
        """Paused or not, the last scan, acceptance per window, staged proposals, spend."""
        from oxi_core.auto_improve.service import status_report

        config, ledger = _open(state)
        settings = config.auto_improve
        report = status_report(ledger, settings, settings.sources
                               or sorted(config.instances["sources"]))
        if as_json:
            emit_json("auto-improve status", report)
            return
        click.echo(f"state:     {'paused: ' + report['paused'] if report['paused'] else 'on'}")
        click.echo(f"sources:   {', '.join(report['sources']) or 'none configured'}")
        click.echo(f"last scan: {report['last_scan'] or 'never'}")
        click.echo(f"staged:    {report['staged']} proposal(s)")
        for window in report["acceptance"]:
            ratio = "n/a" if window["ratio"] is None else f"{window['ratio']:.2f}"
            click.echo(f"accepted:  {window['accepted']}/{window['emitted']} ({ratio}) "
                       f"{window['start'][:10]}..{window['end'][:10]}")
        click.echo(f"spend:     ${report['spent_today_usd']:.4f} of "
                   f"${settings.daily_cap_usd:.2f} today")

    @group.command(name="proposals")
    @click.option("--all", "show_all", is_flag=True, help="Accepted and rejected ones too.")
    @json_option
    @pass_state
    def proposals_command(state: CliState, show_all: bool, as_json: bool) -> None:
        """The proposals staged for you (accept or reject each)."""
        from oxi_core.auto_improve import store

        _config, ledger = _open(state)
        found = store.proposals(ledger, None if show_all else [store.ProposalStatus.STAGED])
        if as_json:
            emit_json("auto-improve proposals", {"proposals": [p.as_json() for p in found]})
            return
        for proposal in found:
            click.echo(_proposal_line(proposal))
        if not found:
            click.echo("no proposals staged" if not show_all else "no proposals yet")

    @group.command(name="accept")
    @click.argument("proposal_id")
    @json_option
    @pass_state
    def accept_command(state: CliState, proposal_id: str, as_json: bool) -> None:
        """Write a staged proposal into roadmap.md as an item (commit it; the next tick
        dispatches it)."""
        from oxi_core.auto_improve.emit import accept

        config, ledger = _open(state)
        accepted = accept(ledger, config.paths, proposal_id)
        if as_json:
            emit_json("auto-improve accept", {"proposal": proposal_id, "item": accepted.id,
                                              "roadmap": str(config.paths.roadmap)})
            return
        click.echo(f"{accepted.id} added to {config.paths.roadmap}; commit it, and the next "
                   "tick dispatches it")

    @group.command(name="reject")
    @click.argument("proposal_id")
    @click.option("--reason", required=True, help="Why not: kept in the ledger.")
    @json_option
    @pass_state
    def reject_command(state: CliState, proposal_id: str, reason: str, as_json: bool) -> None:
        """Reject a staged proposal, saying why."""
        from oxi_core.auto_improve.emit import reject

        _config, ledger = _open(state)
        rejected = reject(ledger, proposal_id, reason)
        if as_json:
            emit_json("auto-improve reject", {"proposal": rejected.id,
                                              "reason": rejected.reason})
            return
        click.echo(f"{rejected.id} rejected: {rejected.reason}")

    @group.command(name="unpause")
    @json_option
    @pass_state
    def unpause_command(state: CliState, as_json: bool) -> None:
        """Resume auto-improve after its health check paused it (the engine is separate)."""
        from oxi_core.auto_improve.health import unpause

        _config, ledger = _open(state)
        resumed = unpause(ledger, ledger.now())
        if as_json:
            emit_json("auto-improve unpause", {"was_paused": resumed})
            return
        click.echo("auto-improve resumed" if resumed else "auto-improve was not paused")
