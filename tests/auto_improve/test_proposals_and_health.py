"""Staged proposals (accept writes the canonical item, reject keeps why), the loop's health
(noise alert, pause, notification, unpause; separate from the engine's killswitch) and the
watchdog."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from oxi_core.auto_improve import store
from oxi_core.auto_improve.health import check_health, unpause, watchdog, windows
from oxi_core.auto_improve.settings import AutoImproveSettings
from oxi_core.auto_improve.store import Proposal, ProposalStatus
from oxi_core.cli import cli
from oxi_core.errors import OxiError
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import isoformat
from oxi_core.roadmap import load_roadmap

NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


def stage(ledger: Ledger, n: int, *, emitted: datetime, status: str = ProposalStatus.STAGED,
          tier: int = 1) -> Proposal:
    proposal = Proposal(id=f"T{tier}-A{n}", n=n, tier=tier, title=f"Idea {n}",
                        subtitle=f"Do idea {n}.", body=f"Why idea {n}.",
                        candidate_key=f"news:{n}", target_key=f"post:{n}",
                        status=ProposalStatus.STAGED, reason="", emitted_at=isoformat(emitted))
    store.insert_proposal(ledger, proposal, {"proposal_id": proposal.id})
    if status != ProposalStatus.STAGED:
        store.decide_proposal(ledger, proposal.id, status, "", ev.EXTERNAL_PROPOSAL_ACCEPTED
                              if status == ProposalStatus.ACCEPTED
                              else ev.EXTERNAL_PROPOSAL_REJECTED, {"proposal_id": proposal.id})
    return proposal


def run(config_path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config_path), *args])


def test_accept_writes_the_canonical_item_and_reject_keeps_why(
        ai_repo: Callable[..., Any]) -> None:
    repo, config = ai_repo(sources={})
    stage(config.ledger, 8, emitted=NOW, tier=2)
    stage(config.ledger, 9, emitted=NOW)
    listed = run(repo.config, "auto-improve", "proposals")
    assert "T2-A8" in listed.output and "T1-A9" in listed.output
    assert run(repo.config, "v3", "auto-improve", "proposals").output == listed.output

    accepted = run(repo.config, "auto-improve", "accept", "T2-A8")
    assert accepted.exit_code == 0, accepted.output
    text = (repo.root / "roadmap.md").read_text()
    assert "**T2-A8 · Idea 8**\n_Do idea 8._\n\nWhy idea 8.\n" in text
    # In its tier: after the last open tier-2 item.
    assert text.index("T2-A7") < text.index("T2-A8")
    assert load_roadmap(repo.root / "roadmap.md").get("T2-A8") is not None

    no_reason = run(repo.config, "auto-improve", "reject", "T1-A9")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    rejected = run(repo.config, "auto-improve", "reject", "T1-A9", "--reason", "not for us")
    assert rejected.exit_code == 0, rejected.output
    assert store.proposal(config.ledger, "T1-A9").reason == "not for us"
    [event] = config.ledger.events(types=[ev.EXTERNAL_PROPOSAL_REJECTED])
    assert event.payload == {"proposal_id": "T1-A9", "reason": "not for us"}

    with pytest.raises(OxiError, match="was accepted already"):
        _raise(run(repo.config, "auto-improve", "accept", "T2-A8"))
    with pytest.raises(OxiError, match="no proposal T1-A99"):
        _raise(run(repo.config, "auto-improve", "reject", "T1-A99", "--reason", "x"))
    assert json.loads(run(repo.config, "auto-improve", "proposals", "--all",
                          "--json").stdout)["proposals"][0]["status"] == "accepted"


def _raise(result: Any) -> None:
    if result.exception is not None:
        raise result.exception


def test_two_noisy_windows_pause_the_loop_notify_and_unpause_resumes(
        ai_repo: Callable[..., Any]) -> None:
    repo, config = ai_repo(sources={}, settings={"health_min_emitted": 2})
    ledger = config.ledger
    settings = config.auto_improve
    notified: list[str] = []
    # Last week: 1 of 4 accepted (0.25): healthy. The week before: 0 of 3.
    for n in range(1, 5):
        stage(ledger, n, emitted=NOW - timedelta(days=2),
              status=ProposalStatus.ACCEPTED if n == 1 else ProposalStatus.REJECTED)
    for n in range(5, 8):
        stage(ledger, n, emitted=NOW - timedelta(days=10), status=ProposalStatus.REJECTED)
    assert [w.ratio for w in windows(ledger, NOW, settings)] == [0.25, 0.0]
    assert not check_health(ledger, settings, NOW, notified.append)
    # Two more rejections this week: 1 of 6 (0.17)... and one more: 1 of 7 (0.14 < 0.15).
    for n in range(8, 11):
        stage(ledger, n, emitted=NOW - timedelta(days=1), status=ProposalStatus.REJECTED)
    assert check_health(ledger, settings, NOW, notified.append)
    assert notified == [ev.AUTO_IMPROVE_NOISE_ALERT, ev.AUTO_IMPROVE_PAUSED]
    alert = ledger.events(types=[ev.AUTO_IMPROVE_NOISE_ALERT])[0].payload
    assert [w["ratio"] for w in alert["windows"]] == [pytest.approx(1 / 7), 0.0]
    assert store.is_paused(ledger)

    # The engine's killswitch is another switch: the engine is not paused, and pausing and
    # resuming it leaves auto-improve paused.
    assert run(repo.config, "pause").exit_code == 0
    assert run(repo.config, "resume").exit_code == 0
    assert store.is_paused(ledger)
    status = json.loads(run(repo.config, "auto-improve", "status", "--json").stdout)
    assert status["paused"].startswith("acceptance ratio below 0.15")

    assert run(repo.config, "auto-improve", "unpause").output.strip() == "auto-improve resumed"
    assert not store.is_paused(ledger)
    assert ledger.events(types=[ev.AUTO_IMPROVE_UNPAUSED])
    # What paused it once does not pause it again.
    assert not check_health(ledger, settings, NOW + timedelta(minutes=1), notified.append)
    assert run(repo.config, "auto-improve", "unpause").output.strip() == \
        "auto-improve was not paused"


def test_the_notifiers_hear_of_the_pause(ai_repo: Callable[..., Any]) -> None:
    from oxi_core.auto_improve.service import notifier_for

    _repo, config = ai_repo(sources={}, settings={"health_min_emitted": 1})
    heard: list[str] = []

    class Ear:
        def notify(self, event: Any) -> None:
            heard.append(event.type)

    config.instances["notifiers"]["ear"] = Ear()
    for n, days in ((1, 1), (2, 9)):
        stage(config.ledger, n, emitted=NOW - timedelta(days=days),
              status=ProposalStatus.REJECTED)
    assert check_health(config.ledger, config.auto_improve, NOW,
                        notifier_for(config, config.ledger))
    assert heard == [ev.AUTO_IMPROVE_NOISE_ALERT, ev.AUTO_IMPROVE_PAUSED]


def test_watchdog_reports_a_stall_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "oxi.db")
    settings = AutoImproveSettings()
    heard: list[str] = []
    assert not watchdog(ledger, settings, NOW, heard.append)  # never scanned: nothing to say
    ledger.append(ev.AUTO_IMPROVE_SCAN_STARTED, payload={})
    started = ledger.events(types=[ev.AUTO_IMPROVE_SCAN_STARTED])[0].ts
    first = datetime.fromisoformat(started)
    assert not watchdog(ledger, settings, first + timedelta(hours=35), heard.append)
    assert watchdog(ledger, settings, first + timedelta(hours=37), heard.append)
    assert not watchdog(ledger, settings, first + timedelta(hours=60), heard.append)
    assert heard == [ev.AUTO_IMPROVE_WATCHDOG_STALLED]
    stall = ledger.events(types=[ev.AUTO_IMPROVE_WATCHDOG_STALLED])[0].payload
    assert stall["last_emitted_at"] is None and stall["threshold_hours"] == 36.0
    ledger.append(ev.EXTERNAL_PROPOSAL_EMITTED, payload={})
    emitted = datetime.fromisoformat(
        ledger.events(types=[ev.EXTERNAL_PROPOSAL_EMITTED])[0].ts)
    assert watchdog(ledger, settings, emitted + timedelta(hours=40), heard.append)
    assert len(heard) == 2
    assert not unpause(ledger, NOW)
