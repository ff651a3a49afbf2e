"""The dashboard in a real browser (the system's headless chromium, driven by Playwright)
against a ledger that real `oxi tick` runs wrote: every panel shows the ledger's figures
(checked here with SQL of the test's own), a task's page tells its story, text from agents and
roadmap items is shown and never run, and the page works on a phone and from the keyboard."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oxi_core.ledger.driver import connect_read_only
from oxi_core.testing.repos import TestRepo as Repo
from tests.dashboard.support import SCRIPT_TITLE, dashboard

pytestmark = pytest.mark.slow


def sql(repo: Repo, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = connect_read_only(repo.root / ".oxi" / "oxi.db")
    try:
        return [tuple(row) for row in conn.execute(query, params).fetchall()]
    finally:
        conn.close()


def usd(value: float) -> str:
    return f"${value:,.4f}"


def rows(page: Any, table_id: str, attribute: str = "data-task") -> list[str]:
    return page.eval_on_selector_all(f"#{table_id} tbody tr[{attribute}]",
                                     f"rows => rows.map(r => r.getAttribute('{attribute}'))")


def figure(page: Any, name: str) -> str:
    return str(page.text_content(f"[data-figure='{name}']")).strip()


@pytest.fixture(scope="module")
def served(ledger_repo: Repo) -> Iterator[str]:
    with dashboard(ledger_repo.root) as server:
        yield server.url


def open_ready(page: Any, url: str) -> float:
    """Open ``url`` and wait until the page is usable (rendered, first live poll answered);
    returns the milliseconds that took, as the browser measured it."""
    page.goto(url)
    page.wait_for_selector("html[data-ready='1']", timeout=30_000)
    return float(page.evaluate("performance.now()"))


def test_every_panel_shows_the_ledgers_figures(ledger_repo: Repo, served: str, page: Any,
                                               artifacts: Path) -> None:
    usable_ms = open_ready(page, served)
    loaded = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
    timing = json.loads(loaded)
    print(f"dashboard usable {usable_ms:.0f} ms after navigation started (DOMContentLoaded "
          f"{timing['domContentLoadedEventEnd']:.0f} ms, load {timing['loadEventEnd']:.0f} ms)")
    shot = artifacts / "overview.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert page.errors == []

    # The board: each column holds exactly the ledger's tasks in that status.
    for column, status in (("planned", "planned"), ("in_flight", "dispatched"),
                           ("in_review", "in_review"), ("retrying", "retrying"),
                           ("held", "held"), ("failed", "failed"), ("skipped", "skipped")):
        expected = [r[0] for r in sql(ledger_repo, "SELECT id FROM tasks WHERE status = ? "
                                      "ORDER BY tier, position, id", (status,))]
        assert rows(page, f"board-{column}") == expected, column
    merged = sql(ledger_repo, "SELECT task_id, json_extract(payload, '$.pr') FROM events "
                              "WHERE type = 'task_merged' ORDER BY id DESC")
    assert rows(page, "board-merged") == [task for task, _pr in merged]
    for task, pr in merged:
        assert page.text_content(f"#board-merged tr[data-task='{task}'] td:nth-child(2)") \
            == f"#{pr}"
    assert pr == sql(ledger_repo, "SELECT pr_number FROM tasks WHERE id = ?", (task,))[0][0]
    (held_id, held_reason), = sql(ledger_repo, "SELECT id, held_reason FROM tasks "
                                               "WHERE status = 'held'")
    assert page.text_content(f"#board-held tr[data-task='{held_id}'] td.why") == held_reason
    for task, error in sql(ledger_repo, "SELECT id, last_error FROM tasks WHERE status = "
                                        "'failed'"):
        assert page.text_content(f"#board-failed tr[data-task='{task}'] td.why") == error
    (retry_id, due, error), = sql(ledger_repo, "SELECT id, retry_due_at, last_error FROM tasks "
                                               "WHERE status = 'retrying'")
    retry_row = f"#board-retrying tr[data-task='{retry_id}']"
    assert page.get_attribute(f"{retry_row} time", "datetime") == due
    assert page.text_content(f"{retry_row} time").startswith("in ")  # type: ignore[union-attr]
    assert page.text_content(f"{retry_row} td.why") == error
    counts = dict(sql(ledger_repo, "SELECT status, count(*) FROM tasks GROUP BY status"))
    assert figure(page, "counts") == "Tasks: " + ", ".join(
        f"{status} {n}" for status, n in sorted(counts.items()))

    # Cost: today against the cap, and the last 30 days by role and model.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    (spent,), = sql(ledger_repo, "SELECT coalesce(sum(cost_usd), 0) FROM events WHERE ts >= ?",
                    (today.isoformat(),))
    assert figure(page, "today") == usd(spent) and spent > 0
    assert figure(page, "cap") == usd(20.0)
    assert figure(page, "cap-used") == f"{spent / 20.0 * 100:.1f}%"
    since = (today - timedelta(days=29)).isoformat()
    by_key = sql(ledger_repo, """
        SELECT CASE type WHEN 'agentic_shadow_observed' THEN 'shadow'
                         WHEN 'dispatch_result' THEN 'worker' ELSE type END,
               coalesce(json_extract(payload, '$.result.model'), json_extract(payload, '$.model'),
                        json_extract(payload, '$.result.agent'), json_extract(payload, '$.agent')),
               count(*), sum(cost_usd)
        FROM events WHERE cost_usd != 0 AND ts >= ? GROUP BY 1, 2""", (since,))
    shown = page.eval_on_selector_all(
        "#cost-by-key tbody tr[data-key]",
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))")
    assert sorted(map(tuple, shown)) == sorted(
        (role, model, str(n), usd(total)) for role, model, n, total in by_key)
    (month,), = sql(ledger_repo, "SELECT sum(cost_usd) FROM events WHERE ts >= ?", (since,))
    assert figure(page, "total") == usd(month)
    assert page.locator("#cost-chart rect").count() == len(by_key)  # one day, a bar per key

    # Throughput: merges and attempts over 30 days.
    (merges,), = sql(ledger_repo, "SELECT count(*) FROM events WHERE type = 'task_merged' "
                                  "AND ts >= ?", (since,))
    (claims,), = sql(ledger_repo, "SELECT count(*) FROM events WHERE type = 'task_claimed' "
                                  "AND ts >= ?", (since,))
    assert (figure(page, "merged"), figure(page, "attempts")) == (str(merges), str(claims))
    assert figure(page, "attempts-per-merge") == f"{claims / merges:.2f}"

    # Agentic shadow: the last 50 pairs, agreement and cost delta.
    pairs = sql(ledger_repo, """
        SELECT json_extract(payload, '$.pair_id'), max(json_extract(payload, '$.shape_match')),
               max(json_extract(payload, '$.cost_delta_usd'))
        FROM events WHERE type = 'agentic_shadow_observed' GROUP BY 1""")
    assert len(pairs) >= 5
    assert figure(page, "pairs") == str(len(pairs))
    assert figure(page, "agreement") == f"{sum(p[1] for p in pairs) / len(pairs) * 100:.1f}%"
    assert figure(page, "cost-delta") == usd(sum(p[2] for p in pairs))
    assert sorted(rows(page, "shadow-pairs", "data-pair")) == sorted(p[0] for p in pairs)
    assert 0 < sum(p[1] for p in pairs) < len(pairs)  # some agree, some do not

    # Auto-improve: health, the last scan's digest, the staged proposals.
    staged = [r[0] for r in sql(ledger_repo, "SELECT id FROM auto_improve_proposals "
                                             "WHERE status = 'staged' ORDER BY n")]
    assert len(staged) == 2
    assert figure(page, "staged") == str(len(staged))
    assert rows(page, "auto-improve-proposals", "data-proposal") == staged
    (digest,), = sql(ledger_repo, "SELECT payload FROM events WHERE type = "
                                  "'auto_improve_scan_finished' ORDER BY id DESC LIMIT 1")
    assert json.loads(digest)["digest"] in page.text_content("#auto-improve-digest")  # type: ignore[operator]
    assert figure(page, "state") == "on"

    # Recent events: the newest 50, newest first.
    newest = [str(r[0]) for r in sql(ledger_repo, "SELECT id FROM events ORDER BY id DESC "
                                                  "LIMIT 50")]
    assert rows(page, "events-table", "data-event-id") == newest


def test_the_events_filter_reads_the_ledger_by_type_and_task(ledger_repo: Repo,
                                                             served: str, page: Any) -> None:
    open_ready(page, served)
    page.fill("#filter-type", "critic_verdict")
    page.fill("#filter-task", "T1-3")
    page.press("#filter-task", "Enter")
    page.wait_for_url("**type=critic_verdict**")
    expected = [str(r[0]) for r in sql(ledger_repo, "SELECT id FROM events WHERE type = "
                                       "'critic_verdict' AND task_id = 'T1-3' ORDER BY id DESC")]
    assert rows(page, "events-table", "data-event-id") == expected and len(expected) == 2
    page.goto(f"{served}?type=task_failed")
    expected = [str(r[0]) for r in sql(ledger_repo, "SELECT id FROM events WHERE type = "
                                                    "'task_failed' ORDER BY id DESC")]
    assert rows(page, "events-table", "data-event-id") == expected


def test_a_tasks_page_tells_each_attempt_and_the_transcript_tail(ledger_repo: Repo,
                                                                 served: str, page: Any) -> None:
    open_ready(page, served)
    page.click("#board-merged a[href='/task/T1-3']")
    page.wait_for_selector("#transcript")
    attempts = page.eval_on_selector_all(
        ".attempt", "items => items.map(a => [a.dataset.attempt, "
                    "a.querySelector('[data-figure=outcome]').textContent])")
    assert attempts == [["1", "rejected by the critic"], ["2", "merged"]]
    claims = sql(ledger_repo, "SELECT json_extract(payload, '$.attempt') FROM events WHERE "
                              "type = 'task_claimed' AND task_id = 'T1-3' ORDER BY id")
    assert [str(c[0]) for c in claims] == ["1", "2"]
    assert "wrong ANSWER in feature_3.py" in page.text_content(".attempt[data-attempt='1']")  # type: ignore[operator]
    (pr,), = sql(ledger_repo, "SELECT pr_number FROM tasks WHERE id = 'T1-3'")
    assert figure(page, "pr") == f"#{pr}"
    transcript = page.eval_on_selector_all("#transcript li", "items => items.map(i => "
                                                             "i.textContent)")
    lines = (ledger_repo.root / ".oxi" / "transcripts" / "T1-3" / "2.jsonl").read_text()
    assert len(transcript) == len(lines.splitlines())
    assert transcript[0].startswith("[assistant] <script>window.__agent_ran = 1</script> "
                                    "working on T1-3 & co")
    assert page.errors == []


@pytest.fixture
def page_without_csp(browser: Any) -> Iterator[Any]:
    """A page that ignores the Content-Security-Policy, so that only the escaping stands
    between the ledger's text and the page's scripts."""
    context = browser.new_context(bypass_csp=True)
    opened = context.new_page()
    opened.errors = []
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()


def test_text_from_agents_and_roadmaps_is_shown_never_run(ledger_repo: Repo, served: str,
                                                          page_without_csp: Any) -> None:
    page = page_without_csp
    flags = ("window.__title_ran", "window.__agent_ran", "window.__reason_ran",
             "window.__proposal_ran")
    for path in ("", "task/T1-6", "task/T1-8", "task/T1-3"):
        open_ready(page, served + path)
        assert page.evaluate(f"[{', '.join(flags)}]") == [None] * 4, path
        assert page.locator("main script, main b").count() == 0, path
    open_ready(page, served)
    held = page.text_content("#board-held tr[data-task='T1-6'] .title")
    assert held == SCRIPT_TITLE  # shown literally, markup and all
    failed = page.text_content("#board-failed tr[data-task='T1-8'] td.why")
    assert failed == "exited 1: <script>window.__reason_ran = 1</script> could not build"
    assert "<script>window.__proposal_ran = 1</script> A web dashboard" in str(
        page.text_content("#auto-improve-proposals"))
    open_ready(page, served + "task/T1-6")
    assert page.text_content("h1") == f"T1-6 · {SCRIPT_TITLE}"
    assert page.errors == []


def contrast(page: Any, selector: str) -> float:
    """The WCAG contrast ratio of an element's text against the first opaque background."""
    return float(page.eval_on_selector(selector, """el => {
        const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
        const lum = ([r, g, b]) => { const f = c => { c /= 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
        let node = el, bg = null;
        while (node && node.nodeType === 1) {
            const c = rgb(getComputedStyle(node).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; }
            node = node.parentElement;
        }
        bg = bg || [255, 255, 255];
        const fg = rgb(getComputedStyle(el).color).slice(0, 3);
        const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
        return (a + 0.05) / (b + 0.05);
    }"""))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_readable_by_keyboard_and_screen_reader_and_on_a_phone(served: str, browser: Any,
                                                                artifacts: Path,
                                                                scheme: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme=scheme,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        open_ready(page, served)
        # No sideways scrolling of the page: wide tables scroll inside their own region.
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
        shot = artifacts / f"phone-{scheme}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        # The keyboard: the first Tab shows the skip link, Enter moves into the panels.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        # Every control has a label; every table a caption and column headers.
        assert page.evaluate("""Array.from(document.querySelectorAll('input, select'))
            .every(c => c.labels && c.labels.length > 0)""")
        assert page.evaluate("""Array.from(document.querySelectorAll('table')).every(t =>
            t.caption && t.caption.textContent.trim() && t.querySelectorAll('th[scope=col]')
            .length > 0)""")
        assert page.evaluate("""Array.from(document.querySelectorAll('[role=region]')).every(
            r => r.getAttribute('aria-labelledby') &&
                 document.getElementById(r.getAttribute('aria-labelledby')))""")
        assert page.evaluate("""Array.from(document.querySelectorAll('svg[role=img]')).every(
            s => s.querySelector('title'))""")
        for selector in ("body", "h2", "#board-held td.why", ".meta", "th",
                         "#board-held a", ".figure dt", "caption .count", "summary"):
            assert contrast(page, selector) >= 4.5, (scheme, selector)
    finally:
        context.close()


def test_live_page_is_usable_within_a_second_report(served: str, page: Any) -> None:
    """Measured, not asserted (timed tests are flaky on shared machines): the figure is
    printed for the report, over five openings of a warm server."""
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        open_ready(page, served)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    print(f"time to a usable page (navigation to first live answer): median "
          f"{samples[2]:.0f} ms, max {samples[-1]:.0f} ms")
    assert page.locator("#board").is_visible()


def test_the_export_opens_offline_in_a_browser(ledger_repo: Repo, page: Any,
                                                tmp_path: Path) -> None:
    from tests.unattended.support import run_oxi

    site = tmp_path / "site"
    assert run_oxi(["dashboard", "--export", str(site)], cwd=ledger_repo.root).returncode == 0
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto((site / "index.html").as_uri())
    assert page.locator("script").count() == 0  # a snapshot: nothing runs
    # The stylesheet applied (a panel has its own background), every panel present.
    assert page.evaluate("getComputedStyle(document.querySelector('.panel')).borderTopStyle") \
        == "solid"
    for panel in ("board", "cost", "throughput", "shadow", "auto-improve", "events"):
        assert page.locator(f"#{panel} .panel-body").count() == 1
    assert rows(page, "board-held") == ["T1-6"]
    page.click("#board-merged a[href='tasks/T1-3.html']")
    page.wait_for_selector("#transcript")
    assert page.evaluate("window.__agent_ran") is None
    assert all(url.startswith("file://") for url in requested), requested  # nothing fetched
    assert page.errors == []
