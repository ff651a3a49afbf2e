"""Schema changes, as an append-only list of named migrations. Never edit an applied one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.models import isoformat, utcnow

Migration = Callable[[Any], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_events(conn: Any) -> None:
    conn.execute(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            type TEXT NOT NULL,
            task_id TEXT,
            session_id TEXT,
            cost_usd REAL NOT NULL DEFAULT 0,
            payload TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    conn.execute("CREATE INDEX events_type_ts ON events (type, ts)")
    conn.execute("CREATE INDEX events_task ON events (task_id, id)")
    conn.execute("CREATE INDEX events_ts ON events (ts)")


@migration
def m002_tasks(conn: Any) -> None:
    conn.execute(
        """
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            tier INTEGER NOT NULL,
            title TEXT NOT NULL,
            subtitle TEXT NOT NULL DEFAULT '',
            section TEXT NOT NULL DEFAULT '',
            position INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            files_touched TEXT NOT NULL DEFAULT '[]',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_progress_at TEXT,
            last_deferred_at TEXT,
            retry_due_at TEXT,
            pr_number INTEGER,
            branch TEXT,
            worktree TEXT,
            agent TEXT,
            model TEXT,
            worker_host TEXT,
            worker_pid INTEGER,
            worker_pgid INTEGER,
            worker_started_at REAL,
            supervisor_pid INTEGER,
            supervisor_started_at REAL,
            last_error TEXT,
            critic_reasons TEXT,
            held_reason TEXT,
            cost_usd REAL NOT NULL DEFAULT 0,
            in_roadmap INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX tasks_status ON tasks (status, tier, position)")


@migration
def m003_pull_requests(conn: Any) -> None:
    # The local forge keeps its pull requests here; other forges keep theirs on the host.
    conn.execute(
        """
        CREATE TABLE pull_requests (
            number INTEGER PRIMARY KEY,
            task_id TEXT,
            branch TEXT NOT NULL,
            base TEXT NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            head_sha TEXT NOT NULL DEFAULT '',
            files TEXT NOT NULL DEFAULT '[]',
            auto_merge_armed INTEGER NOT NULL DEFAULT 0,
            merged_sha TEXT,
            closed_reason TEXT NOT NULL DEFAULT '',
            comments TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX pull_requests_state ON pull_requests (state)")


@migration
def m004_engine_state(conn: Any) -> None:
    conn.execute(
        "CREATE TABLE engine_state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT)"
    )


@migration
def m005_task_progress(conn: Any) -> None:
    # Live progress for `oxi status`, the last deferral (so a repeated one is not re-recorded),
    # and the operator's release of a budget hold.
    for column in (
        "deferred_reason TEXT",
        "budget_released INTEGER NOT NULL DEFAULT 0",
        "session_id TEXT",
        "turns INTEGER NOT NULL DEFAULT 0",
        "tokens INTEGER NOT NULL DEFAULT 0",
        "last_event TEXT",
    ):
        conn.execute(f"ALTER TABLE tasks ADD COLUMN {column}")


@migration
def m006_events_spend_index(conn: Any) -> None:
    # spend_since() (the budget gate before every dispatch, and `oxi status`) and total_spend()
    # sum cost_usd; only the few events that cost money are in this index, with their cost, so
    # neither reads the table nor the free events. On 1,000,000 events (3% with a cost) a day of
    # spend went from 12-27 ms to 0.1 ms and the total from 96 ms to 1 ms
    # (benchmarks/README.md). The queries say `cost_usd != 0` so that SQLite can use it.
    conn.execute("CREATE INDEX events_spend ON events (ts, cost_usd) WHERE cost_usd != 0")


def apply_migrations(conn: Any) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction. Returns their names."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    done: list[str] = []
    for name, fn in MIGRATIONS:
        if name in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the write lock.
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")
                continue
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, isoformat(utcnow())),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(name)
    return done
