"""The open page follows the ledger without reloading (a real `oxi tick` runs while it is
open), and no damaged or huge row breaks it. (Waits poll from Python: Playwright's
wait_for_function evaluates strings, which the page's Content-Security-Policy forbids.)"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oxi_core.ledger.driver import connect_read_only
from oxi_core.testing.repos import TestRepo as Repo
from tests.conftest import roadmap
from tests.dashboard.support import ENGINE, ITEMS, dashboard, toml
from tests.dashboard.test_page import open_ready, rows
from tests.unattended.support import OxiProcess, wait_for

pytestmark = pytest.mark.slow


def sql(repo: Repo, query: str) -> list[tuple[Any, ...]]:
    conn = connect_read_only(repo.root / ".oxi" / "oxi.db")
    try:
        return [tuple(row) for row in conn.execute(query).fetchall()]
    finally:
        conn.close()


def test_an_open_page_shows_work_as_it_happens(own_repo: Repo, page: Any,
                                               tmp_path: Path) -> None:
    own_repo.write("oxi.toml", toml(ENGINE, {"AGENT_SLEEPS": "T1-9=10"}))
    own_repo.write("roadmap.md", roadmap(*ITEMS, ("T1-9", "take your time", "slowly")))
    with dashboard(own_repo.root) as server:
        open_ready(page, server.url)
        page.evaluate("window.__not_reloaded = true")
        (last_before,), = sql(own_repo, "SELECT max(id) FROM events")
        tick = OxiProcess(["tick"], own_repo.root, log_dir=tmp_path / "logs")
        try:
            # In flight, live: the heartbeat's age and the agent's last event, as the ledger has.
            in_flight = "#board-in_flight tr[data-task='T1-9']"
            page.wait_for_selector(f"{in_flight} time[data-since]", timeout=60_000)
            wait_for(lambda: page.text_content(f"{in_flight} td:nth-child(5)") != "starting",
                     timeout=60, what="the agent's first event on the page")
            (last_event, heartbeat), = sql(own_repo, "SELECT last_event, last_progress_at "
                                                     "FROM tasks WHERE id = 'T1-9'")
            assert page.text_content(f"{in_flight} td:nth-child(5)") == last_event
            assert page.get_attribute(f"{in_flight} time", "data-since") <= heartbeat
            assert re.fullmatch(r"\d+ s ago", str(page.text_content(f"{in_flight} time")))
            # New events appear at the top of the events table, marked as new.
            wait_for(lambda: int(rows(page, "events-table", "data-event-id")[0]) > last_before,
                     timeout=60, what="a new event at the top of the events table")
            assert page.locator("#events-table tr.fresh").count() > 0
            assert tick.proc.wait(timeout=240) == 0, tick.stderr
        finally:
            if tick.proc.poll() is None:
                tick.proc.kill()
                tick.proc.wait(timeout=30)
        # The tick is over: T1-9 merged, and the page says so without being reloaded.
        page.wait_for_selector("#board-merged tr[data-task='T1-9']", timeout=60_000)
        assert page.locator("#board-in_flight tr[data-task]").count() == 0
        (newest,), = sql(own_repo, "SELECT max(id) FROM events")
        wait_for(lambda: rows(page, "events-table", "data-event-id")[0] == str(newest),
                 timeout=60, what="the tick's last event on the page")
        assert page.evaluate("window.__not_reloaded") is True
        assert "new event" in str(page.text_content("#live-status")) or "up to date" in str(
            page.text_content("#live-status"))
    assert page.errors == []


def test_damaged_and_huge_rows_never_break_the_page(own_repo: Repo, page: Any) -> None:
    now = datetime.now(UTC).isoformat()
    huge = json.dumps({"verdict": "REJECT", "critic": "critic", "pr": 2,
                       "reasons": ["y" * (5 * 2**20)]})
    conn = sqlite3.connect(own_repo.root / ".oxi" / "oxi.db")
    with conn:
        inserted = [conn.execute(
            "INSERT INTO events (ts, type, task_id, session_id, cost_usd, payload) "
            "VALUES (?, ?, ?, NULL, ?, ?)", (now, type_, task, cost, payload)).lastrowid
            for type_, task, cost, payload in (
                ("dispatch_result", "T1-1", 0.5, "{this is not json"),
                ("critic_verdict", "T1-3", 0.0, huge),
                ("task_failed", "T1-8", 0.0, "null"),
                ("task_failed", None, 0.0, "[1, 2, 3]"),
                ("agentic_shadow_observed", "T1-7", 0.25, '{"pair_id": null, "role": 7}'),
                ("agentic_shadow_observed", "T1-7", 0.0, "{also broken"),
            )]
        conn.execute("INSERT INTO tasks (id, tier, title, status, files_touched, "
                     "last_progress_at, created_at, updated_at) VALUES (?, 1, ?, 'dispatched', "
                     "'{bad', 'not a time', ?, ?)", ("T1-50", "z" * 1_000_000, now, now))
        conn.execute("INSERT INTO tasks (id, tier, title, status, created_at, updated_at) "
                     "VALUES ('T1-51', 1, 'no due time', 'retrying', ?, ?)", (now, now))
    conn.close()
    with dashboard(own_repo.root) as server:
        open_ready(page, server.url)
        assert page.locator("[role=alert]").count() == 0  # no panel failed
        shown = rows(page, "events-table", "data-event-id")
        assert all(str(event_id) in shown for event_id in inserted)
        details = {row: page.text_content(f"#events-table tr[data-event-id='{row}'] td.why")
                   for row in map(str, inserted)}
        assert details[str(inserted[0])] == "{this is not json"
        assert details[str(inserted[1])] == str(len(huge))  # its size, not its text
        assert "could not be read and are left out" in str(page.text_content("#shadow"))
        assert rows(page, "board-in_flight") == ["T1-50"]
        assert sorted(rows(page, "board-retrying")) == ["T1-2", "T1-51"]
        assert len(str(page.text_content("#board-in_flight .title"))) < 400
        # The cost chart counts the damaged row's dollars (the ledger's total does).
        assert "$0.5000" in str(page.text_content("#cost-by-key"))
        open_ready(page, server.url + "task/T1-3")
        assert page.locator("[role=alert]").count() == 0
        assert "more characters)" in str(page.text_content(".attempt[data-attempt='2'] .critic"))
        open_ready(page, server.url + "task/T1-50")
        assert page.locator("[role=alert]").count() == 0
    assert page.errors == []
