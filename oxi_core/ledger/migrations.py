"""Schema changes, as an append-only list of named migrations. Never edit an applied one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from oxi_core.event import isoformat, utcnow

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


# The columns ingest's diff reads: a change to any of them must make the next ingest look again.
INGEST_COLUMNS = ("status", "in_roadmap", "tier", "title", "subtitle", "section", "position",
                  "files_touched")


@migration
def m007_tasks_revision(conn: Any) -> None:
    # A counter that moves whenever a task row changes in a way ingest cares about, and the
    # counter's value on each row, kept by triggers so that every writer (other engines, the
    # CLI) moves it. Ingest then reads only the rows changed since its last pass, and a tick
    # with nothing to do reads one row instead of every task (benchmarks/README.md).
    conn.execute("CREATE TABLE tasks_revision (id INTEGER PRIMARY KEY CHECK (id = 1), "
                 "revision INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0)")
    conn.execute("INSERT INTO tasks_revision (id, revision) VALUES (1, 0)")
    conn.execute("ALTER TABLE tasks ADD COLUMN revision INTEGER NOT NULL DEFAULT 0")
    conn.execute("CREATE INDEX tasks_by_revision ON tasks (revision)")
    stamp = ("UPDATE tasks_revision SET revision = revision + 1; "
             "UPDATE tasks SET revision = (SELECT revision FROM tasks_revision) "
             "WHERE id = NEW.id;")
    conn.execute(f"CREATE TRIGGER tasks_revision_insert AFTER INSERT ON tasks "
                 f"BEGIN {stamp} END")
    conn.execute(f"CREATE TRIGGER tasks_revision_update AFTER UPDATE OF "
                 f"{', '.join(INGEST_COLUMNS)} ON tasks BEGIN {stamp} END")
    conn.execute("CREATE TRIGGER tasks_revision_delete AFTER DELETE ON tasks BEGIN "
                 "UPDATE tasks_revision SET revision = revision + 1, deleted = deleted + 1; END")


_HOUR_ADD = ("INSERT INTO spend_by_hour (hour, cost_usd) VALUES (substr(NEW.ts, 1, 13), "
             "NEW.cost_usd) ON CONFLICT (hour) DO UPDATE SET cost_usd = cost_usd + "
             "excluded.cost_usd;")
_HOUR_REMOVE = ("UPDATE spend_by_hour SET cost_usd = cost_usd - OLD.cost_usd "
                "WHERE hour = substr(OLD.ts, 1, 13);")


@migration
def m008_spend_by_hour(conn: Any) -> None:
    # Dollars per UTC hour, kept by triggers: a day's spend (the budget gate, before every
    # dispatch) sums at most 24 rows however many events cost money that day. With m006 alone it
    # read every costed event of the day: 19 ms for 100,000 of them (benchmarks/README.md).
    # The key is the first 13 characters of an event's ts, "YYYY-MM-DDTHH" (ts is UTC ISO-8601).
    conn.execute("CREATE TABLE spend_by_hour (hour TEXT PRIMARY KEY, cost_usd REAL NOT NULL) "
                 "WITHOUT ROWID")
    conn.execute("INSERT INTO spend_by_hour (hour, cost_usd) SELECT substr(ts, 1, 13), "
                 "sum(cost_usd) FROM events WHERE cost_usd != 0 GROUP BY substr(ts, 1, 13)")
    conn.execute(f"CREATE TRIGGER spend_insert AFTER INSERT ON events "
                 f"WHEN NEW.cost_usd != 0 BEGIN {_HOUR_ADD} END")
    conn.execute(f"CREATE TRIGGER spend_delete AFTER DELETE ON events "
                 f"WHEN OLD.cost_usd != 0 BEGIN {_HOUR_REMOVE} END")
    conn.execute(f"CREATE TRIGGER spend_update AFTER UPDATE OF ts, cost_usd ON events "
                 f"WHEN OLD.cost_usd != 0 OR NEW.cost_usd != 0 "
                 f"BEGIN {_HOUR_REMOVE} {_HOUR_ADD} END")


@migration
def m009_task_rounds(conn: Any) -> None:
    # Attempt numbers only grow (a result is recorded once per attempt, so a number used twice
    # would drop the second run's cost); `oxi task retry` starts a new round of attempts at
    # the current number instead of resetting it.
    conn.execute("ALTER TABLE tasks ADD COLUMN round_start INTEGER NOT NULL DEFAULT 0")


@migration
def m010_auto_improve(conn: Any) -> None:
    # Auto-improve (oxi_core/auto_improve/): every candidate a source returned, once, with what
    # became of it (a scan that stops half-way loses nothing: the next one takes up the rest),
    # and the proposals staged for the operator. The events say why; these rows say where
    # things stand, changed in the same transaction as their event.
    conn.execute(
        """
        CREATE TABLE auto_improve_candidates (
            key TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            identifier TEXT NOT NULL,
            signal_kind TEXT NOT NULL DEFAULT '',
            target_key TEXT NOT NULL DEFAULT '',
            candidate TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            proposal_id TEXT,
            first_seen TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX auto_improve_candidates_status ON auto_improve_candidates "
                 "(status, first_seen)")
    conn.execute(
        """
        CREATE TABLE auto_improve_proposals (
            id TEXT PRIMARY KEY,
            n INTEGER NOT NULL,
            tier INTEGER NOT NULL,
            title TEXT NOT NULL,
            subtitle TEXT NOT NULL,
            body TEXT NOT NULL,
            candidate_key TEXT NOT NULL,
            target_key TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            emitted_at TEXT NOT NULL,
            decided_at TEXT
        )
        """
    )
    conn.execute("CREATE INDEX auto_improve_proposals_status ON auto_improve_proposals "
                 "(status, emitted_at)")


# What a costed event's payload says it was for: its role and its model (a shadow's or a
# fallback's own run first, then the event's, then the agent or critic that ran). A payload
# that is not JSON names neither: a damaged row is counted, never refused. Written with m011;
# the dashboard's fallback for a ledger without m011 reads the same expressions.
SPEND_ROLE_SQL = ("CASE WHEN json_valid({p}) THEN substr(CAST(coalesce("
                  "json_extract({p}, '$.role'), '') AS TEXT), 1, 200) ELSE '' END")
SPEND_MODEL_SQL = ("CASE WHEN json_valid({p}) THEN substr(CAST(coalesce("
                   "json_extract({p}, '$.result.model'), json_extract({p}, '$.model'), "
                   "json_extract({p}, '$.result.agent'), json_extract({p}, '$.agent'), "
                   "json_extract({p}, '$.critic'), '') AS TEXT), 1, 200) ELSE '' END")


def _day_key(row: str) -> str:
    return (f"substr({row}.ts, 1, 10), {row}.type, {SPEND_ROLE_SQL.format(p=row + '.payload')}"
            f", {SPEND_MODEL_SQL.format(p=row + '.payload')}")


_DAY_ADD = (f"INSERT INTO spend_by_day (day, type, role, model, cost_usd, events) "
            f"SELECT {_day_key('NEW')}, NEW.cost_usd, 1 WHERE NEW.cost_usd != 0 "
            f"ON CONFLICT (day, type, role, model) DO UPDATE SET "
            f"cost_usd = cost_usd + excluded.cost_usd, events = events + 1;")
_DAY_REMOVE = (f"UPDATE spend_by_day SET cost_usd = cost_usd - OLD.cost_usd, "  # noqa: S608
               f"events = events - 1 WHERE OLD.cost_usd != 0 "
               f"AND (day, type, role, model) = ({_day_key('OLD')});")


@migration
def m011_spend_by_day(conn: Any) -> None:
    # Dollars and costed events per UTC day, event type, role and model, kept by triggers like
    # m008's hours: the dashboard's 30-day cost chart reads a few hundred rows instead of every
    # costed event of the month with its JSON payload (130 ms for 27,000 of them on 1,000,000
    # events; benchmarks/bench_dashboard.py). Events are append-only; the delete and update
    # triggers keep the totals right for whoever edits the table by hand.
    conn.execute("CREATE TABLE spend_by_day (day TEXT NOT NULL, type TEXT NOT NULL, "
                 "role TEXT NOT NULL, model TEXT NOT NULL, cost_usd REAL NOT NULL, "
                 "events INTEGER NOT NULL, PRIMARY KEY (day, type, role, model)) WITHOUT ROWID")
    role, model = SPEND_ROLE_SQL.format(p="payload"), SPEND_MODEL_SQL.format(p="payload")
    # SQL from this module's constants only (no value is interpolated): hence the noqa.
    conn.execute(f"INSERT INTO spend_by_day (day, type, role, model, cost_usd, events) "  # noqa: S608
                 f"SELECT substr(ts, 1, 10), type, {role}, {model}, sum(cost_usd), count(*) "
                 f"FROM events WHERE cost_usd != 0 GROUP BY 1, 2, 3, 4")

    conn.execute(f"CREATE TRIGGER spend_by_day_insert AFTER INSERT ON events "
                 f"WHEN NEW.cost_usd != 0 BEGIN {_DAY_ADD} END")
    conn.execute(f"CREATE TRIGGER spend_by_day_delete AFTER DELETE ON events "
                 f"WHEN OLD.cost_usd != 0 BEGIN {_DAY_REMOVE} END")
    conn.execute(f"CREATE TRIGGER spend_by_day_update AFTER UPDATE OF ts, type, cost_usd, "
                 f"payload ON events WHEN OLD.cost_usd != 0 OR NEW.cost_usd != 0 "
                 f"BEGIN {_DAY_REMOVE} {_DAY_ADD} END")


# m012: what the per-batch upkeep of the spend totals adds to every new batch of events
# (bound: the highest event id already counted). The ledger runs both in the transaction that
# wrote the events, just before its COMMIT.
COUNT_HOURS = ("INSERT INTO spend_by_hour (hour, cost_usd) SELECT substr(ts, 1, 13), "
               "sum(cost_usd) FROM events WHERE id > ? AND cost_usd != 0 GROUP BY 1 "
               "ON CONFLICT (hour) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd")
COUNT_DAYS = (f"INSERT INTO spend_by_day (day, type, role, model, cost_usd, events) "  # noqa: S608
              f"SELECT substr(ts, 1, 10), type, {SPEND_ROLE_SQL.format(p='payload')}, "
              f"{SPEND_MODEL_SQL.format(p='payload')}, sum(cost_usd), count(*) FROM events "
              f"WHERE id > ? AND cost_usd != 0 GROUP BY 1, 2, 3, 4 "
              f"ON CONFLICT (day, type, role, model) DO UPDATE SET "
              f"cost_usd = cost_usd + excluded.cost_usd, events = events + excluded.events")
# The same for a writer that knows the one time, role and model of every costed event it wrote
# (Ledger.append_many, from what it encoded): one pass over the new events, by type, and no
# payload read back; then the totals are added with these. (+type: grouping by the column
# itself would read every event through the events_type_ts index instead of the new ones.)
COSTS_BY_TYPE = ("SELECT type, sum(cost_usd), count(*) FROM events WHERE id > ? AND "
                 "cost_usd != 0 GROUP BY +type")
ADD_HOUR = ("INSERT INTO spend_by_hour (hour, cost_usd) VALUES (?, ?) "
            "ON CONFLICT (hour) DO UPDATE SET cost_usd = cost_usd + excluded.cost_usd")
ADD_DAY = ("INSERT INTO spend_by_day (day, type, role, model, cost_usd, events) "
           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day, type, role, model) DO UPDATE SET "
           "cost_usd = cost_usd + excluded.cost_usd, events = events + excluded.events")

_NO_FIELDS: dict[str, Any] = {}


def spend_key(payload: Any) -> tuple[str, str] | None:
    """The role and the model that SPEND_ROLE_SQL and SPEND_MODEL_SQL read from the JSON of
    ``payload``, read from the payload itself: a dict whose keys are all str, as encoded
    (keep the two in step). None when that is not certain (a field that is neither text nor
    null, a dict subclass, a NUL, where SQLite's substr stops, a lone surrogate): SQLite then
    reads the JSON."""
    if type(payload) is not dict:
        return None
    get = payload.get
    result = get("result")
    if isinstance(result, dict):
        if type(result) is not dict:
            return None
        inner = result
    else:  # '$.result.model' of a list, a text or a number is null
        inner = _NO_FIELDS
    model = inner.get("model")
    if model is None:
        model = get("model")
    if model is None:
        model = inner.get("agent")
    if model is None:
        model = get("agent")
    if model is None:
        model = get("critic")
    role, model = _spend_text(get("role")), _spend_text(model)
    if role is None or model is None:
        return None
    return role, model


_SPEND_FIELDS = frozenset({"role", "model", "result", "agent", "critic"})
_NO_SPEND_KEY = ("", "")


def one_spend_key(payloads: Iterable[Any]) -> tuple[str, str] | None:
    """The one role and model (``spend_key``) of every payload, or None when they differ or
    one is not certain."""
    keys = {_NO_SPEND_KEY if type(payload) is dict and _SPEND_FIELDS.isdisjoint(payload)
            else spend_key(payload) for payload in payloads}
    return keys.pop() if len(keys) == 1 else None


def _spend_text(value: Any) -> str | None:
    if value is None:
        return ""
    if type(value) is not str or "\x00" in value:
        return None
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate: what SQLite makes of it is its own
            return None
    return value[:200]


# Costed events not in the totals yet: above the mark (another program wrote them, and oxi's
# next write transaction counts them). Readers add them, so their figures are exact meanwhile.
UNCOUNTED_SPEND = "id > (SELECT events_id FROM spend_mark) AND cost_usd != 0"


@migration
def m012_spend_by_batch(conn: Any) -> None:
    # The spend per hour (m008) and per day (m011) are added once per write transaction, by one
    # aggregate over the events it wrote, instead of by triggers on every row (the two per-row
    # triggers cut a batch of costed events to a third of the rate of the same inserts without
    # them; benchmarks/bench_ledger.py). spend_mark holds the highest event id counted: events
    # above it (written in the open transaction, or by another program) are not in the totals
    # yet, so deleting or re-costing one must not move them; the ledger counts them at its next
    # COMMIT. Deleting or re-costing a counted event (a person's repair) still moves them.
    conn.execute("CREATE TABLE spend_mark (events_id INTEGER NOT NULL)")
    conn.execute("INSERT INTO spend_mark SELECT coalesce(max(id), 0) FROM events")
    for name in ("spend_insert", "spend_delete", "spend_update", "spend_by_day_insert",
                 "spend_by_day_delete", "spend_by_day_update"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    counted = "OLD.id <= (SELECT events_id FROM spend_mark)"
    conn.execute(f"CREATE TRIGGER spend_delete AFTER DELETE ON events "
                 f"WHEN OLD.cost_usd != 0 AND {counted} BEGIN {_HOUR_REMOVE} END")
    conn.execute(f"CREATE TRIGGER spend_update AFTER UPDATE OF ts, cost_usd ON events "
                 f"WHEN (OLD.cost_usd != 0 OR NEW.cost_usd != 0) AND {counted} "
                 f"BEGIN {_HOUR_REMOVE} {_HOUR_ADD} END")
    conn.execute(f"CREATE TRIGGER spend_by_day_delete AFTER DELETE ON events "
                 f"WHEN OLD.cost_usd != 0 AND {counted} BEGIN {_DAY_REMOVE} END")
    conn.execute(f"CREATE TRIGGER spend_by_day_update AFTER UPDATE OF ts, type, cost_usd, "
                 f"payload ON events WHEN (OLD.cost_usd != 0 OR NEW.cost_usd != 0) "
                 f"AND {counted} BEGIN {_DAY_REMOVE} {_DAY_ADD} END")


def pending_migrations(conn: Any) -> list[str]:
    """The migrations this ledger has not had, in order (all of them for a new file)."""
    known = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'").fetchone()
    applied = {row[0] for row in conn.execute("SELECT name FROM _migrations")} if known else set()
    return [name for name, _fn in MIGRATIONS if name not in applied]


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
