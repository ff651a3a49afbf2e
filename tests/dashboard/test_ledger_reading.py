"""What the dashboard needs from the ledger: a read-only handle that cannot write, the
per-day cost totals of migration m011 (always equal to the events they sum, backfilled on an
older ledger), and payloads that a damaged row cannot make unreadable for every reader."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oxi_core.dashboard import queries
from oxi_core.errors import LedgerError
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.ledger.driver import connect
from oxi_core.ledger.migrations import MIGRATIONS
from oxi_core.policy import RepoPaths
from tests.unattended.support import run_oxi

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.moment = NOW - timedelta(days=40)

    def __call__(self) -> datetime:
        return self.moment


def write_costs(ledger: Ledger, clock: Clock) -> None:
    """Forty days of costed events of every kind, a damaged one among them."""
    for day in range(41):
        clock.moment = NOW - timedelta(days=40 - day)
        ledger.append(ev.DISPATCH_RESULT, task_id="T1-1", cost_usd=0.5 + day / 100,
                      payload={"model": "claude-sonnet-4-5", "agent": "claude"})
        ledger.append(ev.AGENTIC_SHADOW_OBSERVED, task_id="T1-1", cost_usd=0.25,
                      payload={"role": "shadow", "agent": "codex",
                               "result": {"model": "gpt-5-codex"}})
        ledger.append(ev.INFERENCE_CALL, cost_usd=0.01, payload={"role": "critic",
                                                                 "model": "haiku"})
        ledger.append(ev.CRITIC_VERDICT, task_id="T1-1", cost_usd=0.02,
                      payload={"critic": "review"})
        ledger.append(ev.TICK_FINISHED, payload={"took_s": 1})
    with ledger.transaction() as conn:
        conn.execute("INSERT INTO events (ts, type, cost_usd, payload) VALUES (?, ?, ?, ?)",
                     (NOW.isoformat(), ev.DISPATCH_RESULT, 1.5, "{not json"))


def totals(rows: list[tuple[object, ...]]) -> dict[tuple[object, ...], tuple[float, int]]:
    found: dict[tuple[object, ...], tuple[float, int]] = {}
    for day, type_, role, model, usd, count in rows:
        usd_, n = found.get((day, type_, role, model), (0.0, 0))
        found[(day, type_, role, model)] = (round(usd_ + float(usd), 6), n + int(count))  # type: ignore[call-overload]
    return {key: value for key, value in found.items() if value[1]}


def test_daily_totals_always_equal_the_events_they_sum(tmp_path: Path) -> None:
    clock = Clock()
    ledger = Ledger(tmp_path / "oxi.db", clock=clock)
    write_costs(ledger, clock)
    first = (NOW - timedelta(days=29)).date().isoformat()

    def both() -> tuple[object, object]:
        kept, source = queries.spend_rows(ledger, first)
        assert source == "spend_by_day"
        return totals(kept), totals(queries.raw_spend_rows(ledger, first))

    kept, raw = both()
    assert kept == raw and len(raw) == 30 * 4 + 1
    assert raw[(NOW.date().isoformat(), ev.DISPATCH_RESULT, "", "")] == (1.5, 1)
    assert raw[(NOW.date().isoformat(), ev.AGENTIC_SHADOW_OBSERVED, "shadow",
                "gpt-5-codex")] == (0.25, 1)
    # Whoever edits the table by hand (the triggers see updates and deletes too).
    with ledger.transaction() as conn:
        conn.execute("UPDATE events SET cost_usd = cost_usd * 2 WHERE type = ?",
                     (ev.CRITIC_VERDICT,))
        conn.execute("UPDATE events SET payload = '{\"model\": \"opus\"}' WHERE payload = "
                     "'{not json'")
        conn.execute("DELETE FROM events WHERE type = ?", (ev.INFERENCE_CALL,))
    kept, raw = both()
    assert kept == raw
    assert raw[(NOW.date().isoformat(), ev.DISPATCH_RESULT, "", "opus")] == (1.5, 1)
    ledger.close()


def test_an_older_ledger_gets_its_totals_and_a_reader_copes_before(tmp_path: Path) -> None:
    path = tmp_path / "oxi.db"
    conn = connect(str(path))
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, migrate in MIGRATIONS:
        if name == "m011_spend_by_day":
            break
        migrate(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, NOW.isoformat()))
    for day in range(3):
        conn.execute("INSERT INTO events (ts, type, cost_usd, payload) VALUES (?, ?, ?, ?)",
                     ((NOW - timedelta(days=day)).isoformat(), ev.DISPATCH_RESULT, 0.75,
                      json.dumps({"model": "m"})))
    conn.close()
    settings = queries.Settings(RepoPaths.under(tmp_path), daily_cap_usd=10.0)

    reader = Ledger.open_read_only(path, clock=lambda: NOW)
    before = queries.cost(reader, NOW, settings)
    assert before["source"] == "events" and before["total_usd"] == 2.25
    assert "m011_spend_by_day" not in reader.applied_migrations()  # a reader never migrates
    reader.close()

    Ledger(path).close()  # the next writer migrates (after backing the file up)
    reader = Ledger.open_read_only(path, clock=lambda: NOW)
    after = queries.cost(reader, NOW, settings)
    assert after["source"] == "spend_by_day"
    assert {k: v for k, v in after.items() if k != "source"} == {
        k: v for k, v in before.items() if k != "source"}
    assert after["by_role_model"] == [{"role": "worker", "model": "m", "label": "worker · m",
                                       "cost_usd": 2.25, "events": 3}]
    reader.close()


def test_a_read_only_ledger_neither_creates_nor_writes(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "oxi.db"
    with pytest.raises(LedgerError, match="no ledger at"):
        Ledger.open_read_only(missing)
    assert not missing.parent.exists()
    Ledger(tmp_path / "oxi.db").close()
    reader = Ledger.open_read_only(tmp_path / "oxi.db")
    with pytest.raises(Exception, match="attempt to write a readonly database"):
        reader.append(ev.TICK_STARTED)
    assert reader.count_events() == 0
    reader.close()


def test_a_damaged_payload_is_read_not_fatal(tmp_path: Path, repo_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import roadmap

    repo = repo_factory(roadmap(("T1-1", "one", "a")))
    with Ledger(repo.root / ".oxi" / "oxi.db") as ledger, ledger.transaction() as conn:
        for payload in ("{cut sho", "null", "[1, 2]"):
            conn.execute("INSERT INTO events (ts, type, payload) VALUES (?, ?, ?)",
                         (NOW.isoformat(), ev.TASK_FAILED, payload))
    tail = run_oxi(["ledger", "tail", "--json"], cwd=repo.root)
    assert tail.returncode == 0, tail.stderr
    assert [e["payload"] for e in json.loads(tail.stdout)["events"]] == [
        {"unreadable_payload": "{cut sho"}, {"value": None}, {"value": [1, 2]}]
    assert run_oxi(["status"], cwd=repo.root).returncode == 0
