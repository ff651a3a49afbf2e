"""Ingest reads only what changed: the tasks revision (migration m007) moves with every write
ingest cares about, whoever makes it, and an unchanged roadmap with unchanged tasks is not
diffed at all."""

from __future__ import annotations

import secrets
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxi_core.engine.engine import Engine
from oxi_core.engine.ingest import apply_ingest, diff_roadmap
from oxi_core.engine.ingest_mark import INGEST_MARK_KEY, stored_mark
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.roadmap import parse_roadmap
from oxi_core.tasks import Task, TaskStatus
from tests.conftest import load, roadmap, tick

ITEMS = (("T1-1", "first", "a"), ("T1-2", "second", "b"), ("T2-3", "third", "c"))


def test_the_revision_moves_with_ingest_columns_and_not_with_progress(repo_factory) -> None:
    repo = repo_factory(roadmap(*ITEMS), critic=False)
    engine = Engine(load(repo), capacity=lambda: 0)
    tick(engine)
    ledger = engine.ledger
    start = ledger.tasks_revision()
    assert start[0] >= 3  # three inserts

    ledger.update_task("T1-1", event_type=None, last_progress_at=ledger.now_iso(), turns=4)
    assert ledger.tasks_revision() == start  # a heartbeat is not ingest's business
    assert ledger.tasks_changed_since(start[0]) == []

    ledger.update_task("T1-2", event_type=ev.TASK_UPDATED, files_touched=("x.py",))
    moved = ledger.tasks_revision()
    assert moved[0] > start[0]
    assert [t.id for t in ledger.tasks_changed_since(start[0])] == ["T1-2"]

    ledger.transition("T2-3", TaskStatus.ABANDONED, event_type=ev.TASK_ABANDONED)
    assert [t.id for t in ledger.tasks_changed_since(moved[0])] == ["T2-3"]


def test_a_change_by_another_writer_is_seen_by_the_next_ingest(repo_factory) -> None:
    repo = repo_factory(roadmap(*ITEMS), critic=False)
    engine = Engine(load(repo), capacity=lambda: 0)
    tick(engine)
    assert not tick(engine).ingested  # nothing changed: nothing diffed, nothing written

    # Another process (an older engine, a person with sqlite3) renames a task.
    other = Ledger(engine.config.paths.ledger)
    other.update_task("T1-2", event_type=None, title="renamed elsewhere")
    other.close()

    report = tick(engine)
    assert [(c.kind, c.task_id, c.fields) for c in report.ingested] == [
        ("updated", "T1-2", {"title": "second"})]
    assert engine.ledger.task("T1-2").title == "second"  # type: ignore[union-attr]
    assert not tick(engine).ingested


def test_a_deleted_task_row_brings_back_the_whole_diff(repo_factory) -> None:
    repo = repo_factory(roadmap(*ITEMS), critic=False)
    engine = Engine(load(repo), capacity=lambda: 0)
    tick(engine)
    with engine.ledger.transaction() as conn:
        conn.execute("DELETE FROM tasks WHERE id = 'T1-1'")

    report = tick(engine)
    assert [(c.kind, c.task_id) for c in report.ingested] == [("new", "T1-1")]
    assert engine.ledger.task("T1-1") is not None


def test_an_idle_tick_writes_nothing_and_reads_no_task(repo_factory) -> None:
    repo = repo_factory(roadmap(*ITEMS), critic=False)
    engine = Engine(load(repo), capacity=lambda: 0)
    tick(engine)
    before = (engine.ledger.count_events(), engine.ledger.tasks_revision())
    read: list[int] = []
    original = engine.ledger.tasks_changed_since
    engine.ledger.tasks_changed_since = lambda r: read.append(r) or original(r)  # type: ignore[method-assign]
    for _ in range(3):
        assert not tick(engine).ingested
    assert read == []
    assert (engine.ledger.count_events(), engine.ledger.tasks_revision()) == before


def test_a_task_changed_by_the_engine_is_diffed_alone_and_changes_nothing(repo_factory) -> None:
    repo = repo_factory(roadmap(*ITEMS), critic=False)
    engine = Engine(load(repo), capacity=lambda: 0)
    tick(engine)
    mark = engine.ledger.tasks_revision()[0]
    engine.ledger.transition("T1-1", TaskStatus.HELD, event_type=ev.TASK_HELD,
                             held_reason="operator")
    seen: list[list[str]] = []
    original = engine.ledger.tasks_changed_since

    def spy(revision: int):  # type: ignore[no-untyped-def]
        found = original(revision)
        seen.append([t.id for t in found])
        return found

    engine.ledger.tasks_changed_since = spy  # type: ignore[method-assign]
    assert not tick(engine).ingested
    assert seen == [["T1-1"]]
    assert engine.ledger.tasks_revision()[0] > mark


def test_a_new_process_starts_from_the_mark_the_last_writing_pass_stored(repo_factory) -> None:
    repo = repo_factory(roadmap(*ITEMS), critic=False)
    tick(Engine(load(repo), capacity=lambda: 0))
    # Between processes, another writer renames a task.
    other = Ledger(load(repo).paths.ledger)
    other.update_task("T2-3", event_type=None, title="renamed elsewhere")
    other.close()

    fresh = Engine(load(repo), capacity=lambda: 0)
    full_reads: list[object] = []
    original = fresh.ledger.tasks

    def spy(statuses=None, **kwargs):  # type: ignore[no-untyped-def]
        if statuses is None:
            full_reads.append(kwargs)
        return original(statuses, **kwargs)

    fresh.ledger.tasks = spy  # type: ignore[method-assign]
    report = tick(fresh)
    assert [(c.kind, c.task_id) for c in report.ingested] == [("updated", "T2-3")]
    assert full_reads == []  # only the changed row was read


def test_after_a_dispatch_and_a_merge_the_next_process_reads_no_task_and_parses_nothing(
    repo_factory, monkeypatch
) -> None:
    """The mark is stored at the end of a tick that moved tasks (issue 14: it was stored only
    when ingest changed something, so after any dispatch or merge every later `oxi tick` read
    every task changed since the old mark), and an idle tick takes the roadmap's warnings from
    it instead of parsing the roadmap."""
    repo = repo_factory(roadmap(*ITEMS, ("T1-9", "broken", "x")).replace(
        "**T1-9 · broken**", "**T1-9 broken**"), critic=True)
    worker = Engine(load(repo))
    report = tick(worker)
    assert report.dispatched and report.merged
    revision = worker.ledger.tasks_revision()
    assert stored_mark(worker.ledger).revision == revision[0]  # type: ignore[union-attr]
    events = worker.ledger.count_events()

    import oxi_core.roadmap

    def no_parse(text: str) -> object:
        raise AssertionError("an idle tick parsed the roadmap")

    monkeypatch.setattr(oxi_core.roadmap, "parse_roadmap", no_parse)
    fresh = Engine(load(repo), capacity=lambda: 0)
    read: list[object] = []  # reads of tasks beyond one status's (those in flight, ...)
    for name in ("tasks_changed_since", "tasks_named_or_in"):
        original = getattr(fresh.ledger, name)
        setattr(fresh.ledger, name, lambda *a, _o=original, _n=name, **k: read.append(_n)
                or _o(*a, **k))
    every_task = fresh.ledger.tasks
    fresh.ledger.tasks = lambda statuses=None, **k: (  # type: ignore[method-assign]
        read.append("tasks") if statuses is None else None) or every_task(statuses, **k)
    idle = tick(fresh)
    assert not idle.ingested and not idle.dispatched
    assert any("T1-9" in warning for warning in idle.warnings)  # still logged, from the mark
    assert read == []
    assert fresh.ledger.count_events() == events


def test_an_unreadable_stored_mark_means_one_full_diff(repo_factory) -> None:
    repo = repo_factory(roadmap(*ITEMS), critic=False)
    engine = Engine(load(repo), capacity=lambda: 0)
    tick(engine)
    engine.ledger.state_set(INGEST_MARK_KEY, "{not json")
    fresh = Engine(load(repo), capacity=lambda: 0)
    assert not tick(fresh).ingested
    assert stored_mark(fresh.ledger) is not None  # rewritten by that full pass
    events = fresh.ledger.count_events()
    assert not tick(Engine(load(repo), capacity=lambda: 0)).ingested
    assert fresh.ledger.count_events() == events


@given(st.lists(st.tuples(st.integers(1, 12), st.sampled_from(list(TaskStatus)), st.booleans()),
                max_size=14, unique_by=lambda t: t[0]),
       st.sets(st.integers(1, 12), max_size=8), st.sets(st.integers(1, 12), max_size=3))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_full_pass_reads_fewer_tasks_but_decides_the_same(
    tmp_path: Path, existing: list[tuple[int, TaskStatus, bool]], open_ids: set[int],
    done_ids: set[int],
) -> None:
    # The full pass reads only the roadmap's ids and the open tasks: it must change exactly
    # what a diff over every task would.
    text = roadmap(*[(f"T1-{n}", f"title {n}", "s") for n in sorted(open_ids - done_ids)])
    text += "\n## Done\n\n" + "".join(f"- T1-{n}\n" for n in sorted(done_ids))
    parsed = parse_roadmap(text)
    with Ledger(tmp_path / f"p-{secrets.token_hex(4)}.db") as ledger:
        for n, status, in_roadmap in existing:
            ledger.insert_task(Task(id=f"T1-{n}", tier=1, title=f"title {n}", status=status,
                                    subtitle="s", in_roadmap=in_roadmap),
                               event_type=ev.TASK_INGESTED, payload={})
        expected = diff_roadmap(ledger.tasks(), parsed)
        done = apply_ingest(ledger, parsed, digest="d")
        assert sorted(map(repr, done.changes)) == sorted(map(repr, expected))
