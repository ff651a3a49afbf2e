"""The SQLite ledger: migrations, the driver, events, the tasks projection, and crash safety.

Every test uses a real SQLite file; the concurrency and crash tests use real child processes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxi_core import log
from oxi_core.errors import IllegalTransition, LedgerError
from oxi_core.ledger import Ledger, NewEvent, Verbatim, driver
from oxi_core.ledger import events as ev
from oxi_core.ledger.migrations import MIGRATIONS, apply_migrations
from oxi_core.models import isoformat
from oxi_core.tasks import Task, TaskStatus

S = TaskStatus
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand (the Ledger's ``clock=`` injection)."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock) -> Iterator[Ledger]:
    with Ledger(tmp_path / ".oxi" / "oxi.db", clock=clock) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _isolated_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # register_secret is process-wide; give each test its own set and restore it afterwards.
    monkeypatch.setattr(log, "_known_secrets", ())


def add_task(ledger: Ledger, task_id: str = "T1-1", status: TaskStatus = S.PLANNED) -> Task:
    task = Task(id=task_id, tier=1, title=f"item {task_id}", status=status)
    ledger.insert_task(task, event_type=ev.TASK_INGESTED, payload={"title": task.title})
    return task


def stored_payloads(ledger: Ledger) -> list[str]:
    return [row[0] for row in ledger.conn.execute("SELECT payload FROM events ORDER BY id")]


class Children:
    """Child Python processes of one test; any still running at teardown are killed."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, code: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.fixture
def children() -> Iterator[Children]:
    spawned = Children()
    yield spawned
    spawned.close()


def wait_for(paths: list[Path], procs: list[subprocess.Popen[str]], timeout_s: float = 60) -> None:
    """Wait until every path exists; fail early (with its stderr) if a child died first."""
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None and proc.returncode != 0:
                pytest.fail(f"child exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            pytest.fail(f"children never became ready: {paths}")
        time.sleep(0.005)


def finish(proc: subprocess.Popen[str], timeout_s: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err
    return out


# A child waits at this barrier so that every child starts its work at the same moment.
BARRIER = """
import sys, time
from pathlib import Path
def barrier(folder, name):
    Path(folder, f"ready-{name}").touch()
    while not Path(folder, "go").exists():
        time.sleep(0.0005)
"""


def child(code: str) -> str:
    """The source of a child process: the barrier, then ``code``."""
    return BARRIER + textwrap.dedent(code)


# -- migrations ---------------------------------------------------------------------------


def test_migrations_are_recorded_by_name_in_order(ledger: Ledger) -> None:
    rows = ledger.conn.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall()
    assert [name for name, _ in rows] == [name for name, _ in MIGRATIONS]
    assert all(applied_at for _, applied_at in rows)
    tables = set(ledger.db.table_names())
    assert {"events", "tasks", "pull_requests", "engine_state", "_migrations"} <= tables


def test_applying_migrations_twice_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "oxi.db"
    Ledger(path).close()
    conn = driver.connect(str(path))
    before = conn.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall()
    schema = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()

    assert apply_migrations(conn) == []
    Ledger(path).close()  # reopening applies nothing either

    assert conn.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall() == (
        before
    )
    assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
    conn.close()


def test_a_ledger_from_before_the_derived_tables_gets_them_filled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An existing ledger (migrations up to m006) with spend and tasks: m007 and m008 must
    # derive their tables from what is there, not start from zero.
    path = tmp_path / "oxi.db"
    names = [name for name, _ in MIGRATIONS]
    monkeypatch.setattr("oxi_core.ledger.migrations.MIGRATIONS",
                        MIGRATIONS[:names.index("m007_tasks_revision")])
    clock = FakeClock()
    with Ledger(path, clock=clock) as old:
        old.append(ev.DISPATCH_RESULT, cost_usd=1.25)
        clock.advance(hours=2, minutes=5)
        old.append_many([NewEvent(ev.CRITIC_VERDICT, cost_usd=0.5)] * 3)
        # Written as that old schema takes it (today's Task has columns it lacks).
        with old.transaction() as conn:
            conn.execute("INSERT INTO tasks (id, tier, title, status, created_at, updated_at) "
                         "VALUES ('T1-1', 1, 'a', 'planned', 'then', 'then')")
    monkeypatch.undo()

    with Ledger(path, clock=clock) as new:
        assert new.total_spend() == pytest.approx(2.75)
        assert new.spend_since(isoformat(START + timedelta(hours=1))) == pytest.approx(1.5)
        revision, _ = new.tasks_revision()
        new.transition("T1-1", S.HELD, event_type=ev.TASK_HELD)
        assert [t.id for t in new.tasks_changed_since(revision)] == ["T1-1"]


def test_a_failing_migration_leaves_no_trace_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "oxi.db"
    Ledger(path).close()

    def m999_broken(conn: Any) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(
        "oxi_core.ledger.migrations.MIGRATIONS", [*MIGRATIONS, ("m999_broken", m999_broken)]
    )
    with pytest.raises(LedgerError, match="disk on fire"):
        Ledger(path)

    conn = driver.connect(str(path))
    assert conn.execute("SELECT 1 FROM _migrations WHERE name = 'm999_broken'").fetchone() is None
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    conn.close()


def test_two_processes_opening_a_fresh_ledger_at_once_both_succeed(
    tmp_path: Path, children: Children
) -> None:
    code = child("""
    from oxi_core.ledger import Ledger
    folder, name = sys.argv[1], sys.argv[2]
    barrier(folder, name)
    with Ledger(Path(folder, "oxi.db")) as ledger:
        ledger.append("tick_started", payload={"opener": name})
    """)
    for attempt in range(5):  # the race is short: run it a few times on fresh files
        folder = tmp_path / f"try{attempt}"
        folder.mkdir()
        procs = [children.spawn(code, str(folder), str(n)) for n in range(2)]
        wait_for([folder / f"ready-{n}" for n in range(2)], procs)
        (folder / "go").touch()
        for proc in procs:
            finish(proc)
        with Ledger(folder / "oxi.db") as ledger:
            names = [row[0] for row in ledger.conn.execute("SELECT name FROM _migrations")]
            assert sorted(names) == sorted(name for name, _ in MIGRATIONS)
            assert ledger.count_events(ev.TICK_STARTED) == 2


# -- the driver ---------------------------------------------------------------------------


def test_the_driver_is_the_module_sqlite_utils_uses(ledger: Ledger) -> None:
    module = driver.sqlite_module()
    assert module is vars(sqlite_utils.utils)["sqlite3"]  # bound there, not re-exported
    assert isinstance(ledger.conn, module.Connection)
    # sqlite-utils wraps the very same connection, so its errors are the driver's errors.
    assert ledger.db.conn is ledger.conn
    assert sqlite_utils.utils.OperationalError is module.OperationalError


def test_the_driver_picks_the_same_module_as_sqlite_utils_without_importing_it(
    tmp_path: Path,
) -> None:
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from oxi_core.ledger import Ledger, driver
        with Ledger(Path(sys.argv[1])) as ledger:
            ledger.append("tick_started")
        assert "sqlite_utils" not in sys.modules, "opening the ledger imported sqlite_utils"
        import sqlite_utils.utils
        print(driver.sqlite_module() is sqlite_utils.utils.sqlite3, driver.sqlite_module().__name__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "oxi.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "pysqlite3"]


def test_the_driver_can_load_extensions_on_this_machine() -> None:
    assert driver.can_load_extensions()
    assert driver.sqlite_module().__name__ == "pysqlite3"


def test_the_ledger_is_in_wal_mode_with_normal_sync(ledger: Ledger) -> None:
    assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    # WAL is a property of the file: another tool opening it sees it too.
    other = sqlite_utils.Database(str(ledger.path))
    assert other.journal_mode == "wal"
    other.close()


# -- events -------------------------------------------------------------------------------


def test_append_returns_increasing_ids_and_stores_every_field(
    ledger: Ledger, clock: FakeClock
) -> None:
    first = ledger.append(ev.TICK_STARTED)
    second = ledger.append(
        ev.DISPATCH_RESULT,
        task_id="T1-1",
        session_id="s-1",
        cost_usd=0.25,
        payload={"tokens": {"in": 10, "out": 5}, "model": "claude-sonnet-4-5"},
    )
    assert second > first

    (event,) = ledger.events(after_id=first)
    assert event.id == second
    assert event.ts == isoformat(clock.moment)
    assert (event.type, event.task_id, event.session_id) == (ev.DISPATCH_RESULT, "T1-1", "s-1")
    assert event.cost_usd == 0.25
    assert event.payload == {"tokens": {"in": 10, "out": 5}, "model": "claude-sonnet-4-5"}


def test_append_many_lands_a_batch_in_order_and_counts_it(ledger: Ledger) -> None:
    batch = [NewEvent(ev.AGENT_EVENT, task_id="T1-1", payload={"n": n}) for n in range(50)]
    assert ledger.append_many(batch) == 50
    assert ledger.append_many([]) == 0
    assert [e.payload["n"] for e in ledger.events()] == list(range(50))
    assert ledger.count_events() == 50


def test_events_filters_by_type_task_time_and_position(ledger: Ledger, clock: FakeClock) -> None:
    ids = {}
    for etype, task_id in [
        (ev.TICK_STARTED, None),
        (ev.TASK_CLAIMED, "T1-1"),
        (ev.TASK_CLAIMED, "T1-2"),
        (ev.DISPATCH_RESULT, "T1-1"),
        (ev.TICK_FINISHED, None),
    ]:
        ids[(etype, task_id)] = ledger.append(etype, task_id=task_id)
        clock.advance(days=1)

    assert [e.type for e in ledger.events(types=[ev.TASK_CLAIMED])] == [ev.TASK_CLAIMED] * 2
    assert [e.type for e in ledger.events(types=[ev.TICK_STARTED, ev.TICK_FINISHED])] == [
        ev.TICK_STARTED,
        ev.TICK_FINISHED,
    ]
    assert ledger.events(types=[]) == []
    assert [e.type for e in ledger.events(task_id="T1-1")] == [ev.TASK_CLAIMED, ev.DISPATCH_RESULT]
    since = isoformat(START + timedelta(days=3))
    assert [e.type for e in ledger.events(since=since)] == [ev.DISPATCH_RESULT, ev.TICK_FINISHED]
    after = ids[(ev.TASK_CLAIMED, "T1-2")]
    assert [e.id for e in ledger.events(after_id=after)] == [
        ids[(ev.DISPATCH_RESULT, "T1-1")],
        ids[(ev.TICK_FINISHED, None)],
    ]
    newest = ledger.events(newest_first=True, limit=2)
    assert [e.type for e in newest] == [ev.TICK_FINISHED, ev.DISPATCH_RESULT]
    assert [e.type for e in ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-2")] == [
        ev.TASK_CLAIMED
    ]


def test_count_events_counts_all_or_one_type(ledger: Ledger) -> None:
    ledger.append_many([NewEvent(ev.AGENT_EVENT)] * 7 + [NewEvent(ev.TICK_STARTED)] * 3)
    assert ledger.count_events() == 10
    assert ledger.count_events(ev.AGENT_EVENT) == 7
    assert ledger.count_events(ev.PR_MERGED) == 0


def test_spend_since_sums_only_events_at_or_after_the_moment(
    ledger: Ledger, clock: FakeClock
) -> None:
    ledger.append(ev.DISPATCH_RESULT, cost_usd=5.0)  # yesterday
    clock.advance(days=1)
    midnight = isoformat(clock.moment.replace(hour=0))
    ledger.append(ev.DISPATCH_RESULT, cost_usd=0.5)
    clock.advance(hours=3)
    ledger.append_many([NewEvent(ev.CRITIC_VERDICT, cost_usd=0.25)] * 4)

    assert ledger.spend_since(midnight) == pytest.approx(1.5)
    assert ledger.spend_since(isoformat(clock.moment)) == pytest.approx(1.0)
    assert ledger.spend_since(isoformat(clock.moment + timedelta(seconds=1))) == 0.0
    assert ledger.total_spend() == pytest.approx(6.5)


def test_spend_counts_refunds_and_ignores_free_events(ledger: Ledger) -> None:
    ledger.append_many(
        [NewEvent(ev.DISPATCH_RESULT, cost_usd=2.0), NewEvent(ev.BUDGET_UNDERCOUNT, cost_usd=-0.5)]
        + [NewEvent(ev.AGENT_EVENT)] * 20
    )
    assert ledger.spend_since(isoformat(START)) == 1.5
    assert ledger.total_spend() == 1.5


def test_spend_queries_never_scan_the_events(ledger: Ledger, clock: FakeClock) -> None:
    # The budget gate runs spend_since() before every dispatch: on a big ledger it must read
    # the per-hour totals, and events only through the spend index for a part of an hour, or
    # by id above the mark of those counted (m012: what another program wrote meanwhile).
    statements: list[str] = []
    ledger.conn.set_trace_callback(statements.append)
    ledger.spend_since(isoformat(START.replace(minute=0, second=0, microsecond=0)))
    ledger.spend_since(isoformat(START.replace(minute=17)))
    ledger.total_spend()
    ledger.conn.set_trace_callback(None)

    assert len(statements) == 3
    for sql in statements:  # the traced SQL has its parameters inlined
        plan = " ".join(str(row[-1]) for row in ledger.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "spend_by_hour" in plan, (sql, plan)
        assert "SCAN events" not in plan, (sql, plan)
        reads = re.findall(r"(?:SEARCH|SCAN) events\b.*?(?= SCALAR|$)", plan)
        assert all("events_spend" in read or "(rowid>?)" in read for read in reads), (sql, plan)
        assert "INTEGER PRIMARY KEY (rowid>?)" in plan, (sql, plan)
        if "ts < " in sql:  # the part of the first hour
            assert "COVERING INDEX events_spend" in plan, (sql, plan)


@given(st.lists(st.tuples(st.integers(0, 72 * 60), st.sampled_from([0.0, 0.25, 1.0, -0.5])),
                max_size=40),
       st.integers(0, 72 * 60), st.sampled_from(["+00:00", "+05:30", "-08:00"]))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_spend_since_agrees_with_summing_the_events(
    tmp_path: Path, moments: list[tuple[int, float]], since_minute: int, zone: str
) -> None:
    clock = FakeClock(START)
    ledger = Ledger(tmp_path / f"spend-{secrets.token_hex(4)}.db", clock=clock)
    for minute, cost in sorted(moments):
        clock.moment = START + timedelta(minutes=minute)
        ledger.append(ev.DISPATCH_RESULT, cost_usd=cost)
    since_moment = START + timedelta(minutes=since_minute, seconds=7 * (since_minute % 2))
    since = since_moment.astimezone(timezone(timedelta(hours=int(zone[:3]),
                                                       minutes=int(zone[0] + zone[4:])))
                                    ).isoformat(timespec="microseconds")
    expected = sum(cost for minute, cost in moments
                   if START + timedelta(minutes=minute) >= since_moment)
    assert ledger.spend_since(since) == pytest.approx(expected)
    assert ledger.total_spend() == pytest.approx(sum(cost for _, cost in moments))
    ledger.close()


WRITES = ("one", "batch", "task", "raw", "raw then repaired", "other program",
          "newest deleted")


@given(st.lists(st.tuples(st.integers(0, 50 * 60), st.sampled_from(WRITES),
                          st.lists(st.floats(-1, 3).map(lambda c: round(c, 3)), min_size=1,
                                   max_size=4)), max_size=25))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_spend_totals_are_the_sums_of_the_events_whatever_writes_them(
    tmp_path: Path, writes: list[tuple[int, str, list[float]]]
) -> None:
    """Migration m012: each write transaction adds the events it wrote to spend_by_hour and
    spend_by_day with one aggregate (no trigger per row): the ledger's own inserts, a writer's
    own SQL through transaction() (even one that deletes in the same transaction what it just
    inserted), another program's rows (counted by the next transaction), an id given again
    after the newest event was deleted; deleting or re-costing a counted event still moves
    them."""
    clock = FakeClock(START)
    path = tmp_path / f"spend-{secrets.token_hex(4)}.db"
    ledger = Ledger(path, clock=clock)
    ledger.insert_task(Task(id="T1-1", tier=1, title="t", status=TaskStatus.PLANNED),
                       event_type=ev.TASK_INGESTED, payload={})
    raw = "INSERT INTO events (ts, type, cost_usd, payload) VALUES (?, ?, ?, ?)"
    for minute, how, costs in sorted(writes):
        clock.moment = START + timedelta(minutes=minute)
        rows = [(ledger.now_iso(), ev.DISPATCH_RESULT, cost, '{"model": "m", "role": "r"}')
                for cost in costs]
        if how == "one":
            for cost in costs:
                ledger.append(ev.AGENT_EVENT, cost_usd=cost, payload={"agent": "a"})
        elif how == "batch":
            ledger.append_many(NewEvent(ev.AGENT_EVENT, cost_usd=cost) for cost in costs)
        elif how == "task":
            ledger.update_task("T1-1", event_type=ev.CRITIC_VERDICT, cost_usd=costs[0])
        elif how.startswith("raw"):
            with ledger.transaction() as conn:
                conn.executemany(raw, [(*row[:3], Verbatim(row[3])) for row in rows])
                if how == "raw then repaired":
                    conn.execute("UPDATE events SET cost_usd = cost_usd + 1 WHERE id = "
                                 "(SELECT max(id) FROM events)")
                    conn.execute("DELETE FROM events WHERE id = (SELECT min(id) FROM events "
                                 "WHERE id > (SELECT max(id) - ? FROM events))", (len(rows),))
        elif how == "other program":
            other = driver.sqlite_module().connect(str(path), isolation_level=None)
            other.executemany(raw, rows)
            other.close()
        else:
            with ledger.transaction() as conn:
                conn.execute("DELETE FROM events WHERE id = (SELECT max(id) FROM events)")
            ledger.append(ev.AGENT_EVENT, cost_usd=costs[0])  # gets the deleted one's id
    # Readers are exact before the next write counts another program's rows.
    total = ledger.query("SELECT coalesce(sum(cost_usd), 0) FROM events")[0][0]
    assert ledger.total_spend() == pytest.approx(total, abs=1e-9)
    for since in (START, START + timedelta(minutes=90), START + timedelta(hours=7, minutes=13)):
        spent = ledger.query("SELECT coalesce(sum(cost_usd), 0) FROM events WHERE ts >= ?",
                             (isoformat(since),))[0][0]
        assert ledger.spend_since(isoformat(since)) == pytest.approx(spent, abs=1e-9)
    ledger.append(ev.TICK_FINISHED)  # counts what another program wrote last

    def agree() -> None:
        hours = dict(ledger.query("SELECT hour, cost_usd FROM spend_by_hour"))
        for hour, total in ledger.query(
                "SELECT substr(ts, 1, 13), sum(cost_usd) FROM events GROUP BY 1"):
            assert hours.pop(hour, 0.0) == pytest.approx(total, abs=1e-9), hour
        assert all(value == pytest.approx(0, abs=1e-9) for value in hours.values())
        days = {(day, type_): (usd, n) for day, type_, usd, n in ledger.query(
            "SELECT day, type, sum(cost_usd), sum(events) FROM spend_by_day GROUP BY 1, 2")}
        for day, type_, usd, n in ledger.query(
                "SELECT substr(ts, 1, 10), type, sum(cost_usd), count(*) FROM events "
                "WHERE cost_usd != 0 GROUP BY 1, 2"):
            kept_usd, kept_n = days.pop((day, type_), (0.0, 0))
            assert (kept_usd, kept_n) == (pytest.approx(usd, abs=1e-9), n), (day, type_)
        assert all(n == 0 for _usd, n in days.values())

    agree()
    with ledger.transaction() as conn:  # a person's repairs
        conn.execute("UPDATE events SET cost_usd = cost_usd * 2 WHERE id % 3 = 0")
        conn.execute("DELETE FROM events WHERE id % 5 = 0")
    agree()
    assert not ledger.query("SELECT 1 FROM sqlite_master WHERE type = 'trigger' "
                            "AND name IN ('spend_insert', 'spend_by_day_insert')")
    ledger.close()


def test_a_known_key_shape_in_a_payload_is_redacted_in_the_stored_row(ledger: Ledger) -> None:
    key = "sk-ant-api03-" + secrets.token_urlsafe(32)
    ledger.append(ev.AGENT_EVENT, payload={"stderr": f"auth failed for {key}"})
    ledger.append_many([NewEvent(ev.AGENT_EVENT, payload={"deep": [{"env": {"k": key}}]})])

    for text in stored_payloads(ledger):
        assert key not in text
        assert log.REDACTED in text
    assert ledger.events()[0].payload == {"stderr": f"auth failed for {log.REDACTED}"}


def test_secrets_in_free_text_task_columns_are_redacted_in_the_stored_row(
    ledger: Ledger,
) -> None:
    key = "sk-ant-api03-" + secrets.token_urlsafe(32)
    add_task(ledger)
    ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={}, branch="oxi/T1-1-task-state-docs")
    ledger.transition(
        "T1-1",
        S.PLANNED,
        event_type=ev.WORKTREE_HOOK_FAILED,
        last_error=f"setup hook failed: curl: 401 for {key}",
    )
    ledger.update_task("T1-1", event_type=None, critic_reasons=f"leaked {key} in config.py")

    row = ledger.conn.execute("SELECT * FROM tasks WHERE id = 'T1-1'").fetchone()
    assert key not in repr(row)
    task = ledger.task("T1-1")
    assert task is not None
    assert task.last_error == f"setup hook failed: curl: 401 for {log.REDACTED}"
    assert task.critic_reasons == f"leaked {log.REDACTED} in config.py"
    assert task.branch == "oxi/T1-1-task-state-docs"  # identifiers are stored as given


def test_every_text_a_writer_binds_is_redacted_but_names_and_roadmap_text_round_trip(
    ledger: Ledger,
) -> None:
    # Issue 9 (6b): a session id is text from outside like any other, and so is what a plugin
    # writes with its own SQL inside a transaction; the write path redacts them all.
    key = "sk-ant-api03-" + secrets.token_urlsafe(32)
    # A title whose slug looks like a key: the roadmap's text and the branch made from it are
    # stored as they are (ingest compares them; a merge reads the branch back).
    title = "wrap sk-learn-pipelines-and-estimators"
    ledger.insert_task(Task(id="T1-1", tier=1, title=title, status=S.PLANNED,
                            files_touched=("src/sk-learn-pipelines-glue.py",)),
                       event_type=ev.TASK_INGESTED, payload={})
    branch = "oxi/T1-1-wrap-sk-learn-pipelines-and-estimators"
    ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={}, branch=branch)
    ledger.update_task("T1-1", event_type=ev.DISPATCH_RESULT, session_id=f"run-{key}")
    ledger.append(ev.AGENT_EVENT, task_id="T1-1", session_id=key)
    ledger.append_many([NewEvent(ev.AGENT_EVENT, "T1-1", session_id=f"s {key}")])
    with ledger.transaction() as conn:
        conn.execute("INSERT INTO pull_requests (number, task_id, branch, base, title, body, "
                     "state, created_at, updated_at) VALUES (1, 'T1-1', ?, 'main', ?, ?, "
                     "'open', 'now', 'now')", (Verbatim(branch), title, f"token {key}"))

    dump = "\n".join(repr(row) for table in ("tasks", "events", "pull_requests")
                     for row in ledger.conn.execute(f"SELECT * FROM {table}"))
    assert key not in dump
    task = ledger.task("T1-1")
    assert task is not None
    assert task.session_id == f"run-{log.REDACTED}"
    assert (task.title, task.branch, task.files_touched) == (
        title, branch, ("src/sk-learn-pipelines-glue.py",))
    assert [e.session_id for e in ledger.events() if e.session_id] == [
        f"run-{log.REDACTED}", log.REDACTED, f"s {log.REDACTED}"]
    assert ledger.query("SELECT branch, body FROM pull_requests") == [
        (branch, f"token {log.REDACTED}")]


@pytest.mark.parametrize("before", ["\n", "\t", "é", "\x01", " ", "="])
def test_a_bare_sk_key_after_an_escaped_character_is_redacted_in_the_json_row(
    ledger: Ledger, before: str
) -> None:
    # The row is redacted as JSON text, where a newline before the key is the two characters
    # backslash and n: the key still starts a token.
    key = "sk-" + secrets.token_hex(24)
    ledger.append(ev.AGENT_EVENT, payload={"stderr": f"line one{before}{key}"})

    (text,) = stored_payloads(ledger)
    assert key not in text
    assert ledger.events()[0].payload == {"stderr": f"line one{before}{log.REDACTED}"}


def test_a_registered_secret_is_redacted_in_the_stored_row_however_it_is_nested(
    ledger: Ledger,
) -> None:
    secret = "hunter-" + secrets.token_hex(8)
    log.register_secret(secret)
    ledger.append(ev.AGENT_EVENT, payload={"a": {"b": [1, {"c": f"x{secret}y"}]}, secret: "key"})
    add_task(ledger)
    ledger.update_task("T1-1", event_type=ev.TASK_UPDATED, payload={"note": secret})

    for text in stored_payloads(ledger):
        assert secret not in text
    assert ledger.events()[0].payload == {
        "a": {"b": [1, {"c": f"x{log.REDACTED}y"}]},
        log.REDACTED: "key",
    }


def test_append_many_redacts_only_the_rows_that_hold_a_secret(ledger: Ledger) -> None:
    secret = "hunter-" + secrets.token_hex(8)
    log.register_secret(secret)
    key = "ghp_" + secrets.token_hex(18)
    batch = [NewEvent(ev.AGENT_EVENT, payload={"n": n, "text": f"line {n}"}) for n in range(300)]
    batch[17] = NewEvent(ev.AGENT_EVENT, payload={"n": 17, "text": f"export K={secret}"})
    batch[250] = NewEvent(ev.AGENT_EVENT, payload={"n": 250, "env": [{"GH": key}]})
    ledger.append_many(batch)

    assert all(secret not in text and key not in text for text in stored_payloads(ledger))
    payloads = [e.payload for e in ledger.events()]
    assert payloads[17] == {"n": 17, "text": f"export K={log.REDACTED}"}
    assert payloads[250] == {"n": 250, "env": [{"GH": log.REDACTED}]}
    untouched = [p for n, p in enumerate(payloads) if n not in (17, 250)]
    assert untouched == [{"n": n, "text": f"line {n}"} for n in range(300) if n not in (17, 250)]


@pytest.mark.parametrize(
    "secret",
    ["pässwört-" + "x" * 6, 'quo"te\\back-slash', "tab\tand\nnewline"],
    ids=["non-ascii", "quote-and-backslash", "control-characters"],
)
def test_a_registered_secret_that_json_escapes_is_still_redacted(
    ledger: Ledger, secret: str
) -> None:
    log.register_secret(secret)
    ledger.append(ev.AGENT_EVENT, payload={"value": secret})

    (text,) = stored_payloads(ledger)
    assert json.loads(text) == {"value": log.REDACTED}


def test_a_short_secret_matching_json_syntax_still_leaves_a_readable_payload(
    ledger: Ledger,
) -> None:
    log.register_secret("4242")
    ledger.append(ev.AGENT_EVENT, payload={"port": 14242, "pid": 424299})

    (text,) = stored_payloads(ledger)
    assert "4242" not in text
    (event,) = ledger.events()  # every row stays valid JSON, so reading never breaks
    assert log.REDACTED in json.dumps(event.payload)
    assert ledger.conn.execute("SELECT json_valid(payload) FROM events").fetchone()[0] == 1


def test_a_payload_strict_json_cannot_hold_is_stored_not_dropped(ledger: Ledger) -> None:
    ledger.append(ev.AGENT_EVENT, payload={"ratio": float("nan"), "files": {"b", "a"}})
    ledger.append(ev.AGENT_EVENT, payload={1: "int key", "s": "str key"})  # type: ignore[dict-item]

    assert ledger.count_events() == 2
    # SQLite's own JSON functions (Datasette, sqlite-utils) can read every row.
    assert ledger.conn.execute("SELECT min(json_valid(payload)) FROM events").fetchone()[0] == 1
    first, second = ledger.events()
    assert first.payload["ratio"] == "nan"
    assert second.payload == {"1": "int key", "s": "str key"}


# -- claims ---------------------------------------------------------------------------------


def test_a_planned_task_is_claimed_once_and_a_second_claim_fails(ledger: Ledger) -> None:
    add_task(ledger)
    assert ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={"engine": "a"}, agent="x")
    assert not ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={"engine": "b"})

    task = ledger.task("T1-1")
    assert task is not None
    assert (task.status, task.attempts, task.agent) == (S.DISPATCHED, 1, "x")
    assert task.last_progress_at == ledger.now_iso()
    assert [e.payload for e in ledger.events(types=[ev.TASK_CLAIMED])] == [{"engine": "a"}]


def test_a_claim_through_a_second_connection_sees_the_first_claim(ledger: Ledger) -> None:
    add_task(ledger)
    with Ledger(ledger.path) as other_engine:
        assert other_engine.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    assert not ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    assert ledger.count_events(ev.TASK_CLAIMED) == 1


@pytest.mark.parametrize("status", [S.HELD, S.IN_REVIEW, S.FAILED, S.MERGED, S.ABANDONED])
def test_a_task_that_is_not_planned_cannot_be_claimed(ledger: Ledger, status: TaskStatus) -> None:
    add_task(ledger, status=status)
    assert not ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    assert ledger.count_events(ev.TASK_CLAIMED) == 0


def test_a_retrying_task_is_claimable_only_once_its_retry_is_due(
    ledger: Ledger, clock: FakeClock
) -> None:
    add_task(ledger)
    assert ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    due = isoformat(clock.moment + timedelta(minutes=10))
    ledger.transition("T1-1", S.RETRYING, event_type=ev.RETRY_SCHEDULED, retry_due_at=due)

    assert not ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    clock.advance(minutes=9, seconds=59)
    assert not ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    clock.advance(seconds=1)  # exactly due
    assert ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    assert not ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})

    task = ledger.task("T1-1")
    assert task is not None
    assert (task.status, task.attempts) == (S.DISPATCHED, 2)
    assert ledger.count_events(ev.TASK_CLAIMED) == 2


def test_engines_racing_for_the_same_tasks_never_claim_one_twice(
    tmp_path: Path, children: Children
) -> None:
    path = tmp_path / "oxi.db"
    with Ledger(path) as ledger:
        for n in range(60):
            add_task(ledger, f"T1-{n}")
    code = child("""
    from oxi_core.ledger import Ledger
    folder, name = sys.argv[1], sys.argv[2]
    with Ledger(Path(folder, "oxi.db")) as ledger:
        barrier(folder, name)
        won = [n for n in range(60)
               if ledger.claim(f"T1-{n}", event_type="task_claimed", payload={"engine": name})]
    print(" ".join(map(str, won)))
    """)
    procs = [children.spawn(code, str(tmp_path), str(n)) for n in range(3)]
    wait_for([tmp_path / f"ready-{n}" for n in range(3)], procs)
    (tmp_path / "go").touch()
    wins = [[int(n) for n in finish(proc).split()] for proc in procs]

    claimed = sorted(n for won in wins for n in won)
    assert claimed == list(range(60))  # every task once, none twice
    with Ledger(path) as ledger:
        assert ledger.count_events(ev.TASK_CLAIMED) == 60
        assert {t.attempts for t in ledger.tasks()} == {1}
        owners = {e.task_id: e.payload["engine"] for e in ledger.events(types=[ev.TASK_CLAIMED])}
    for engine, won in enumerate(wins):
        assert all(owners[f"T1-{n}"] == str(engine) for n in won)


# -- transitions ----------------------------------------------------------------------------


def test_a_legal_transition_moves_the_task_and_records_from_and_to(ledger: Ledger) -> None:
    add_task(ledger)
    ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    task = ledger.transition(
        "T1-1", S.IN_REVIEW, event_type=ev.PR_OPENED, payload={"pr": 7}, pr_number=7, cost_usd=0.5
    )
    assert task is not None
    assert (task.status, task.pr_number, task.cost_usd) == (S.IN_REVIEW, 7, 0.5)
    (event,) = ledger.events(types=[ev.PR_OPENED])
    assert event.payload == {"from": "dispatched", "to": "in_review", "pr": 7}
    assert event.cost_usd == 0.5


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.PLANNED, S.IN_REVIEW),
        (S.MERGED, S.PLANNED),
        (S.DONE, S.DISPATCHED),
        (S.HELD, S.DISPATCHED),
        (S.FAILED, S.MERGED),
    ],
)
def test_an_illegal_transition_raises_and_writes_nothing(
    ledger: Ledger, start: TaskStatus, target: TaskStatus
) -> None:
    add_task(ledger, status=start)
    before_events = ledger.count_events()
    before_task = ledger.task("T1-1")

    with pytest.raises(IllegalTransition) as raised:
        ledger.transition(
            "T1-1", target, event_type=ev.TASK_UPDATED, cost_usd=1.0, last_error="nope"
        )

    assert (raised.value.current, raised.value.target) == (start, target)
    assert ledger.count_events() == before_events
    assert ledger.task("T1-1") == before_task


def test_a_transition_with_expect_returns_none_when_someone_else_moved_the_task(
    ledger: Ledger,
) -> None:
    add_task(ledger)
    ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})  # another engine got there
    before = ledger.count_events()

    moved = ledger.transition(
        "T1-1", S.HELD, event_type=ev.TASK_HELD, expect=[S.PLANNED], held_reason="over budget"
    )

    assert moved is None
    assert ledger.count_events() == before
    task = ledger.task("T1-1")
    assert task is not None
    assert (task.status, task.held_reason) == (S.DISPATCHED, None)


def test_a_transition_of_an_unknown_task_raises_a_ledger_error(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="no task T9-9"):
        ledger.transition("T9-9", S.HELD, event_type=ev.TASK_HELD)
    assert ledger.count_events() == 0


def test_event_and_projection_are_one_transaction_when_the_event_insert_fails(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_task(ledger)
    before_task = ledger.task("T1-1")
    before_events = ledger.count_events()

    def insert_fails(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("event insert failed after the projection update")

    monkeypatch.setattr(ledger, "_insert_event", insert_fails)
    with pytest.raises(RuntimeError, match="after the projection update"):
        ledger.transition("T1-1", S.HELD, event_type=ev.TASK_HELD, held_reason="budget")
    with pytest.raises(RuntimeError, match="after the projection update"):
        ledger.update_task("T1-1", event_type=ev.DISPATCH_RESULT, cost_usd=2.0, agent="x")
    with pytest.raises(RuntimeError, match="after the projection update"):
        ledger.claim("T1-1", event_type=ev.TASK_CLAIMED, payload={})
    monkeypatch.undo()

    assert ledger.task("T1-1") == before_task
    assert ledger.count_events() == before_events
    # The connection is usable afterwards: no transaction was left open.
    assert not ledger.conn.in_transaction
    ledger.transition("T1-1", S.HELD, event_type=ev.TASK_HELD, held_reason="budget")
    task = ledger.task("T1-1")
    assert task is not None
    assert task.status is S.HELD


def test_update_task_adds_cost_to_the_projection_and_the_event(ledger: Ledger) -> None:
    add_task(ledger)
    ledger.update_task(
        "T1-1", event_type=ev.DISPATCH_RESULT, cost_usd=0.75, files_touched=("a.py", "b.py")
    )
    ledger.update_task("T1-1", event_type=ev.CRITIC_VERDICT, cost_usd=0.25)

    task = ledger.task("T1-1")
    assert task is not None
    assert (task.cost_usd, task.files_touched) == (1.0, ("a.py", "b.py"))
    assert sum(e.cost_usd for e in ledger.events(task_id="T1-1")) == 1.0
    with pytest.raises(ValueError, match="transition"):
        ledger.update_task("T1-1", event_type=None, status="held")


def test_nested_transactions_commit_together_or_not_at_all(ledger: Ledger) -> None:
    add_task(ledger)
    before = ledger.count_events()

    def write_then_fail() -> None:
        with ledger.transaction():
            ledger.update_task("T1-1", event_type=ev.DISPATCH_RESULT, cost_usd=3.0)
            ledger.append_many([NewEvent(ev.AGENT_EVENT)] * 10)
            raise KeyError("the outer block fails after both inner writes")

    with pytest.raises(KeyError):
        write_then_fail()

    assert ledger.count_events() == before
    task = ledger.task("T1-1")
    assert task is not None
    assert task.cost_usd == 0.0


def test_a_commit_that_fails_rolls_back_and_leaves_the_ledger_usable(ledger: Ledger) -> None:
    # A deferred foreign key is checked at COMMIT: the COMMIT itself fails.
    ledger.conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    ledger.conn.execute(
        "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) "
        "DEFERRABLE INITIALLY DEFERRED)"
    )
    before = ledger.count_events()

    def write_an_orphan() -> None:
        with ledger.transaction() as conn:
            ledger.append(ev.AGENT_EVENT)
            conn.execute("INSERT INTO child (parent_id) VALUES (42)")

    with pytest.raises(driver.sqlite_module().IntegrityError, match="FOREIGN KEY"):
        write_an_orphan()

    assert not ledger.conn.in_transaction
    assert ledger.count_events() == before
    ledger.append(ev.AGENT_EVENT)  # the next transaction starts cleanly
    assert ledger.count_events() == before + 1


# -- acceptance: concurrency and crashes ------------------------------------------------------


WRITER = child("""
from oxi_core.ledger import Ledger, NewEvent
folder, name, per_writer, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
other = "b" if name == "a" else "a"
with Ledger(Path(folder, "oxi.db")) as ledger:
    barrier(folder, name)
    seq, announced = 0, False
    while seq < per_writer:
        if seq and not announced:
            Path(folder, f"wrote-{name}").touch()
            announced = True
        if seq + batch >= per_writer:
            # The last write waits for the other writer's first, so that the two overlap
            # however the machine schedules them.
            while not Path(folder, f"wrote-{other}").exists():
                time.sleep(0.0005)
        if batch == 1:
            ledger.append("agent_event", session_id=name, payload={"writer": name, "seq": seq})
            seq += 1
        else:
            n = min(batch, per_writer - seq)
            ledger.append_many(
                NewEvent("agent_event", session_id=name, payload={"writer": name, "seq": s})
                for s in range(seq, seq + n)
            )
            seq += n
""")


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 7], ids=["one-by-one", "small-batches"])
def test_two_processes_appending_ten_thousand_events_each_lose_none(
    tmp_path: Path, children: Children, batch: int
) -> None:
    per_writer = 10_000
    Ledger(tmp_path / "oxi.db").close()
    procs = [
        children.spawn(WRITER, str(tmp_path), name, str(per_writer), str(batch)) for name in "ab"
    ]
    wait_for([tmp_path / "ready-a", tmp_path / "ready-b"], procs)
    (tmp_path / "go").touch()
    for proc in procs:
        finish(proc)

    with Ledger(tmp_path / "oxi.db") as ledger:
        assert ledger.count_events() == 2 * per_writer
        for name in "ab":
            seqs = [
                row[0]
                for row in ledger.conn.execute(
                    "SELECT json_extract(payload, '$.seq') FROM events WHERE session_id = ? "
                    "ORDER BY id",
                    (name,),
                )
            ]
            assert seqs == list(range(per_writer))  # complete, and in each writer's order
        # The writers really overlapped: their id ranges interleave.
        spans = {
            name: ledger.conn.execute(
                "SELECT min(id), max(id) FROM events WHERE session_id = ?", (name,)
            ).fetchone()
            for name in "ab"
        }
        assert spans["a"][0] < spans["b"][1]
        assert spans["b"][0] < spans["a"][1]
        assert ledger.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


CRASHER = child("""
import sys
from pathlib import Path
from oxi_core.ledger import Ledger, NewEvent
folder, batch = sys.argv[1], int(sys.argv[2])
with Ledger(Path(folder, "oxi.db")) as ledger:
    start = ledger.conn.execute(
        "SELECT coalesce(max(json_extract(payload, '$.round')), -1) + 1 FROM events"
    ).fetchone()[0]
    Path(folder, "started").touch()
    round_ = start
    while True:
        # One event + one projection change in one transaction.
        ledger.update_task("T1-1", event_type="dispatch_result", cost_usd=1.0,
                           payload={"round": round_})
        # A large batch whose cost the projection absorbs in the same transaction.
        with ledger.transaction():
            ledger.append_many(
                NewEvent("agent_event", task_id="T1-1", cost_usd=0.25,
                         payload={"round": round_, "k": k})
                for k in range(batch)
            )
            ledger.update_task("T1-1", event_type=None, cost_usd=0.25 * batch)
        # And a batch with no projection at all.
        ledger.append_many(
            NewEvent("tick_finished", payload={"round": round_, "k": k}) for k in range(batch)
        )
        round_ += 1
""")


def assert_consistent(ledger: Ledger, batch: int) -> int:
    task = ledger.task("T1-1")
    assert task is not None
    spent = ledger.conn.execute(
        "SELECT coalesce(sum(cost_usd), 0) FROM events WHERE task_id = 'T1-1'"
    ).fetchone()[0]
    assert spent == task.cost_usd  # costs are binary fractions: the sums are exact
    for etype in ("agent_event", "tick_finished"):
        sizes = ledger.conn.execute(
            "SELECT json_extract(payload, '$.round') AS r, count(*) FROM events "
            "WHERE type = ? GROUP BY r",
            (etype,),
        ).fetchall()
        assert {size for _, size in sizes} <= {batch}, f"a partial {etype} batch: {sizes}"
        total = ledger.count_events(etype)
        assert total % batch == 0
    assert ledger.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return int(ledger.count_events())


@pytest.mark.slow
def test_sigkill_mid_batch_leaves_events_and_tasks_consistent(
    tmp_path: Path, children: Children
) -> None:
    batch = 2_000
    path = tmp_path / "oxi.db"
    with Ledger(path) as ledger:
        add_task(ledger)
    counts = []
    # Different moments: early in the first transactions, and deep into a running loop.
    for delay in (0.0, 0.013, 0.05, 0.11, 0.23, 0.4, 0.71):
        (tmp_path / "started").unlink(missing_ok=True)
        proc = children.spawn(CRASHER, str(tmp_path), str(batch))
        wait_for([tmp_path / "started"], [proc])
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the child stopped before it was killed"

        with Ledger(path) as ledger:  # recovery: the next opener sees only whole transactions
            counts.append(assert_consistent(ledger, batch))
            ledger.update_task("T1-1", event_type=ev.TASK_UPDATED, cost_usd=0.5)  # still writable
            counts[-1] += 1

    assert counts == sorted(counts)
    assert counts[-1] > counts[0]  # the children got real work done between the kills
