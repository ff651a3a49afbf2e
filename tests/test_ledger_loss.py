"""A lost ledger never redoes merged work (issue 9, point 3): an emptied or foreign ledger is an
error that says what to do, a new one first records what origin's base branch merged, migrations
back the ledger up first, and `oxi ledger backup` makes a copy to restore from."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from oxi_core.errors import LedgerError
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.ledger.migrations import MIGRATIONS, apply_migrations
from oxi_core.tasks import TaskStatus
from oxi_core.testing.together import start_oxi_together
from tests.conftest import roadmap
from tests.unattended.support import ROOMY_HOST, run_oxi

if TYPE_CHECKING:
    from oxi_core.testing.repos import TestRepo

NOTE = ("T1-5", "a note", "writes notes/T1-5.txt")
SECOND = ("T1-6", "another note", "writes notes/T1-6.txt")


def ledger_path(repo: TestRepo) -> Path:
    return repo.root / ".oxi" / "oxi.db"


def ticked(repo: TestRepo) -> str:
    done = run_oxi(["tick"], cwd=repo.root)
    assert done.returncode == 0, done.stderr
    return done.stdout


def starts(repo: TestRepo) -> list[str | None]:
    with Ledger(ledger_path(repo)) as ledger:
        return [e.task_id for e in ledger.events(types=[ev.WORKER_STARTED])]


@pytest.fixture
def merged_once(repo_factory) -> TestRepo:
    """A repository whose T1-5 oxi has merged into origin's main."""
    repo = repo_factory(roadmap(NOTE))
    ticked(repo)
    assert repo.origin_file("notes/T1-5.txt") == "T1-5 was here\n"
    return repo


def test_an_emptied_ledger_is_an_error_that_says_what_to_do_and_runs_nothing(
    merged_once: TestRepo,
) -> None:
    history = merged_once.origin_log()
    ledger_path(merged_once).write_bytes(b"")  # `: > .oxi/oxi.db`

    for args in (["tick"], ["status"], ["saturate", "-j", "1"]):
        refused = run_oxi(args, cwd=merged_once.root)
        assert refused.returncode != 0, (args, refused.stdout)
        message = refused.stderr
        assert "is empty" in message and ".oxi" in message, message
        assert "oxi ledger backup" in message and "delete" in message, message
    assert ledger_path(merged_once).stat().st_size == 0  # nothing written over it
    assert merged_once.origin_log() == history  # nothing dispatched, nothing merged again


def test_a_database_without_oxis_schema_is_refused_and_left_alone(merged_once: TestRepo) -> None:
    path = ledger_path(merged_once)
    path.unlink()
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes (body TEXT)")
    other.commit()
    other.close()

    refused = run_oxi(["tick"], cwd=merged_once.root)
    assert refused.returncode != 0
    assert "not an oxi ledger" in refused.stderr and "notes" in refused.stderr, refused.stderr
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
    conn.close()


def test_a_new_ledger_records_what_origin_merged_and_dispatches_only_the_rest(
    merged_once: TestRepo,
) -> None:
    merged_once.write("roadmap.md", roadmap(NOTE, SECOND))
    for path in ledger_path(merged_once).parent.glob("oxi.db*"):
        path.unlink()  # deleted on purpose: a genuinely new ledger

    ticked(merged_once)

    assert starts(merged_once) == ["T1-6"]  # T1-5 was never dispatched again
    assert merged_once.origin_file("notes/T1-5.txt") == "T1-5 was here\n"
    assert merged_once.origin_file("notes/T1-6.txt") == "T1-6 was here\n"
    with Ledger(ledger_path(merged_once)) as ledger:
        assert ledger.task("T1-5").status is TaskStatus.MERGED
        (reconciled,) = ledger.events(types=[ev.TASK_MERGED], task_id="T1-5")
        assert reconciled.payload["on"] == "origin/main"
        assert reconciled.payload["commit"] == merged_once.git("rev-parse", "origin/main~1")
        assert ledger.task("T1-6").status is TaskStatus.MERGED


def test_a_dry_run_on_a_new_ledger_shows_merged_work_as_merged(merged_once: TestRepo) -> None:
    merged_once.write("roadmap.md", roadmap(NOTE, SECOND))
    for path in ledger_path(merged_once).parent.glob("oxi.db*"):
        path.unlink()

    plan = run_oxi(["tick", "--dry-run"], cwd=merged_once.root)
    assert plan.returncode == 0, plan.stderr
    assert "merged on origin/main: T1-5" in plan.stdout
    assert "T1-5" not in plan.stdout.split("merged on origin/main: T1-5", 1)[1]
    assert "T1-6" in plan.stdout


def test_oxi_ledger_backup_makes_a_copy_the_ledger_can_be_restored_from(
    merged_once: TestRepo, tmp_path: Path,
) -> None:
    backup = tmp_path / "backups" / "oxi-backup.db"
    made = run_oxi(["ledger", "backup", str(backup)], cwd=merged_once.root)
    assert made.returncode == 0, made.stderr
    assert str(backup) in made.stdout
    again = run_oxi(["ledger", "backup", str(backup)], cwd=merged_once.root)
    assert again.returncode != 0 and "exists" in again.stderr  # never overwritten silently

    # A ledger that still holds events is not replaced without --force.
    kept = run_oxi(["ledger", "restore", str(backup)], cwd=merged_once.root)
    assert kept.returncode != 0 and "--force" in kept.stderr, kept.stderr

    ledger_path(merged_once).write_bytes(b"")
    assert run_oxi(["status"], cwd=merged_once.root).returncode != 0
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    wrong = run_oxi(["ledger", "restore", str(not_a_backup)], cwd=merged_once.root)
    assert wrong.returncode != 0 and "not a SQLite database" in wrong.stderr, wrong.stderr
    restored = run_oxi(["ledger", "restore", str(backup)], cwd=merged_once.root)
    assert restored.returncode == 0, restored.stderr

    ticked(merged_once)
    assert starts(merged_once) == ["T1-5"]  # the one run before the backup; none since
    status = run_oxi(["status", "--json"], cwd=merged_once.root)
    assert status.returncode == 0, status.stderr
    assert '"merged": 1' in status.stdout


def test_a_migration_backs_the_ledger_up_first(tmp_path: Path) -> None:
    path = tmp_path / ".oxi" / "oxi.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    # A ledger from before the last migration, holding a task.
    older = MIGRATIONS[:-1]
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    conn.isolation_level = None
    for name, migrate in older:
        migrate(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    conn.execute("INSERT INTO tasks (id, tier, title, status, created_at, updated_at) "
                 "VALUES ('T1-1', 1, 'kept', 'merged', 'then', 'then')")
    conn.close()

    with Ledger(path) as ledger:
        assert ledger.task("T1-1").status is TaskStatus.MERGED

    (backup,) = (tmp_path / ".oxi" / "backups").iterdir()
    assert MIGRATIONS[-1][0] in backup.name
    copy = sqlite3.connect(backup)
    assert {r[0] for r in copy.execute("SELECT name FROM _migrations")} == {n for n, _ in older}
    assert copy.execute("SELECT title FROM tasks").fetchall() == [("kept",)]
    copy.close()
    with Ledger(path):  # nothing pending: no second backup
        pass
    assert len(list((tmp_path / ".oxi" / "backups").iterdir())) == 1


def test_a_fresh_ledger_takes_no_backup(tmp_path: Path) -> None:
    with Ledger(tmp_path / ".oxi" / "oxi.db") as ledger:
        assert apply_migrations(ledger.conn) == []
    assert not (tmp_path / ".oxi" / "backups").exists()


def test_a_new_ledger_appears_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Built beside its place and linked in: a process that fails (or dies) while creating it
    # leaves nothing another would take for an emptied ledger.
    path = tmp_path / ".oxi" / "oxi.db"
    (tmp_path / ".oxi" / "worktrees").mkdir(parents=True)  # oxi state beside it

    def m999_broken(conn: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("oxi_core.ledger.migrations.MIGRATIONS",
                        [*MIGRATIONS, ("m999_broken", m999_broken)])
    with pytest.raises(LedgerError, match="disk on fire"):
        Ledger(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["worktrees"]
    monkeypatch.undo()
    with Ledger(path) as ledger:
        assert ledger.count_events() == 0


@pytest.mark.parametrize("commands", [("status", "status"), ("tick", "tick"), ("status", "tick")])
def test_two_oxi_processes_started_together_on_a_new_repository_both_succeed(
    repo_factory, tmp_path: Path, commands: tuple[str, str]
) -> None:
    repo = repo_factory(roadmap(NOTE))
    env = {**os.environ, "OXI_RAISE_ERRORS": "0", "OXI_PROBE_READINGS": ROOMY_HOST}
    env.pop("PYTEST_CURRENT_TEST", None)
    for round_ in range(8):  # the race is a few milliseconds wide: a new state folder each time
        shutil.rmtree(repo.root / ".oxi", ignore_errors=True)

        procs = start_oxi_together([[command] for command in commands],
                                   gate=tmp_path / f"gate{round_}", cwd=repo.root, env=env)
        outcomes = [(proc.wait(timeout=300), proc.communicate()[1]) for proc in procs]

        for code, stderr in outcomes:
            assert code == 0, f"round {round_}: {stderr[-3000:]}"
        with Ledger(ledger_path(repo)) as ledger:
            applied = [row[0] for row in ledger.conn.execute("SELECT name FROM _migrations")]
            assert applied == [name for name, _ in MIGRATIONS]  # one schema, each migration once
            if "tick" in commands:  # merged by the first round's tick, found merged after that
                assert ledger.task("T1-5").status is TaskStatus.MERGED  # type: ignore[union-attr]
                assert ledger.count_events(ev.TASK_INGESTED) == 1
                assert ledger.count_events(ev.WORKER_STARTED) == (1 if round_ == 0 else 0)
        assert not (repo.root / ".oxi" / "backups").exists()  # a new ledger, not a migrated one
