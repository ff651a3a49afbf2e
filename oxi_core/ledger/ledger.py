"""The ledger: one SQLite file holding the append-only event log and its projections.

Every change to a projection (``tasks``, ``pull_requests``, ``engine_state``) is written in the
same transaction as the event that explains it, so a crash never leaves the two disagreeing.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import attrs

from oxi_core.errors import LedgerError
from oxi_core.event import Event, isoformat, parse_ts, utcnow
from oxi_core.ledger import backup, driver
from oxi_core.ledger.migrations import (
    ADD_DAY,
    ADD_HOUR,
    COSTS_BY_TYPE,
    COUNT_DAYS,
    COUNT_HOURS,
    MIGRATIONS,
    UNCOUNTED_SPEND,
    apply_migrations,
    one_spend_key,
    pending_migrations,
)
from oxi_core.ledger.payloads import jsonable, payload_json, payload_jsons, redact_json
from oxi_core.log import may_hold_secret, redact_text
from oxi_core.tasks import Task, TaskStatus, check_transition

Clock = Callable[[], datetime]

# SQL below is built with f-strings only from these column names (checked by _column_values)
# and '?' placeholders; every value is a bound parameter. Hence the S608 noqa comments.
TASK_COLUMNS = frozenset(field.name for field in attrs.fields(Task))
_FIELD_NAMES = {name: name for name in TASK_COLUMNS}
_JSON_TASK_COLUMNS = frozenset({"files_touched"})
# Task columns stored exactly as given: names and times oxi made itself, and the roadmap's own
# text (committed in the repository, and compared by ingest, so it must round-trip). Every
# other text column (errors, critic replies, session ids, ...) is redacted.
_VERBATIM_TASK_COLUMNS = frozenset(
    {"id", "status", "title", "subtitle", "section", "files_touched", "branch", "worktree",
     "agent", "model", "worker_host", "last_progress_at", "last_deferred_at", "retry_due_at",
     "created_at", "updated_at"}
)
_INSERT_EVENT = ("INSERT INTO events (ts, type, task_id, session_id, cost_usd, payload) "
                 "VALUES (?, ?, ?, ?, ?, ?)")


class Verbatim(str):
    """Text a writer's own SQL stores as it is (through ``Ledger.transaction()``): names and
    times it made itself, or JSON already redacted as JSON (``stored_json``). Any other text it
    binds is redacted."""

    __slots__ = ()


def _stored(params: Sequence[Any] | Mapping[str, Any]) -> Any:
    """Bound parameters as the ledger stores them: plain text redacted, the rest as it is."""
    if isinstance(params, Mapping):
        return {key: redact_text(value) if type(value) is str else value
                for key, value in params.items()}
    return [redact_text(value) if type(value) is str else value for value in params]


class WritePath:
    """The connection as ``Ledger.transaction()`` hands it out: every text bound to a
    statement is redacted unless it is ``Verbatim``, so what a plugin writes with its own SQL
    (the local forge's pull requests) is covered like the ledger's own columns."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        return self._conn.execute(sql, _stored(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        return self._conn.executemany(sql, [_stored(row) for row in rows])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def stored_json(value: Any) -> Verbatim:
    """``value`` as compact JSON for a ledger column, redacted as JSON (it stays readable)."""
    return Verbatim(redact_json(json.dumps(jsonable(value), separators=(",", ":"))))


@attrs.frozen
class NewEvent:
    """An event to append; ``append_many`` takes these."""

    type: str
    task_id: str | None = None
    session_id: str | None = None
    cost_usd: float = 0.0
    payload: Mapping[str, Any] = attrs.field(factory=dict)


def _session_ids(values: Sequence[str | None]) -> Sequence[str | None]:
    """Session ids come from agents: redacted like any text from outside (one look first)."""
    present = [value for value in values if value]
    if not present or not may_hold_secret("\n".join(present)):
        return values
    return [None if value is None else redact_text(value) for value in values]



def _create(path: Path) -> None:
    """Make a new ledger appear whole: built beside its place, then linked in. No process ever
    opens a ledger file that another is still creating (and takes it for an emptied one)."""
    staged = path.with_name(f".{path.name}.new-{os.getpid()}-{threading.get_ident()}")
    # Rollback-journal mode while building, so everything is in the one file when it is
    # linked; the first real connection switches it to WAL.
    try:
        conn = driver.sqlite_module().connect(str(staged), isolation_level=None)
        try:
            apply_migrations(conn)
        finally:
            conn.close()
        try:
            os.link(staged, path)
        except FileExistsError:
            pass  # another process made it first: theirs is as good
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(staged, path)
    finally:
        for suffix in ("", *backup.SIDE_FILES):
            Path(f"{staged}{suffix}").unlink(missing_ok=True)


def _files_touched(text: str | None) -> tuple[str, ...]:
    """A damaged list reads as no files rather than stopping every reader of the tasks."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _task(values: dict[str, Any]) -> Task:
    values["status"] = TaskStatus(values["status"])
    values["files_touched"] = _files_touched(values.get("files_touched"))
    values["in_roadmap"] = bool(values.get("in_roadmap", 1))
    values["budget_released"] = bool(values.get("budget_released", 0))
    return Task(**values)


def _task_reader(description: Sequence[Sequence[Any]]) -> Callable[[Sequence[Any]], Task]:
    """Rows of one query to Tasks: the columns are matched to fields once, not per row."""
    # The field names' own (interned) strings: Task(**values) matches them by identity, which
    # is faster than comparing the driver's column-name strings.
    picks = [(i, _FIELD_NAMES[d[0]]) for i, d in enumerate(description) if d[0] in _FIELD_NAMES]

    def read(row: Sequence[Any]) -> Task:
        return _task({name: row[i] for i, name in picks})

    return read


def event_from_row(row: Sequence[Any]) -> Event:
    return Event(
        id=row[0],
        ts=row[1],
        type=row[2],
        task_id=row[3],
        session_id=row[4],
        cost_usd=row[5],
        payload=read_payload(row[6]),
    )


def event_columns(max_payload_chars: int | None = None) -> str:
    """The columns ``event_from_row`` reads, in order; a payload longer than
    ``max_payload_chars`` is replaced by an object giving its length."""
    payload = "payload"
    if max_payload_chars is not None:
        payload = (f"CASE WHEN length(payload) > {int(max_payload_chars)} THEN "
                   "json_object('oversized_payload', length(payload)) ELSE payload END")
    return f"id, ts, type, task_id, session_id, cost_usd, {payload}"


def read_payload(text: Any) -> dict[str, Any]:
    """A stored payload as a dict. oxi writes only JSON objects, but a row written by hand or
    damaged must not stop every reader: anything else is kept, readable, under one key."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"unreadable_payload": str(text)[:UNREADABLE_KEPT]}
    return value if isinstance(value, dict) else {"value": value}


# How much of a payload that is not JSON a reader keeps (the row itself is left as it is).
UNREADABLE_KEPT = 2000


class Ledger:
    """The SQLite ledger of one repository. Safe to share between threads of one process."""

    conn: Any

    def __init__(self, path: Path, *, clock: Clock = utcnow) -> None:
        self.path = Path(path)
        self.clock = clock
        conn: Any = None
        try:
            # Before connecting: connecting writes (WAL mode), and an emptied ledger or someone
            # else's database must be left as it is.
            backup.refuse_lost_or_foreign(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                _create(self.path)
            conn = driver.connect(str(self.path))
            pending = pending_migrations(conn)
            if pending and len(pending) < len(MIGRATIONS):  # a ledger about to change shape
                backup.backup_before_migrating(conn, self.path, pending[0])
            apply_migrations(conn)
        except LedgerError:
            if conn is not None:
                conn.close()
            raise
        except Exception as error:  # the driver's own error types vary
            if conn is not None:
                conn.close()
            raise LedgerError(
                f"cannot open the ledger at {self.path}: {error}",
                hint="check that the folder is writable and the file is an oxi SQLite ledger",
            ) from error
        self._adopt(conn)

    def backup(self, dest: Path) -> None:
        """A consistent copy of the ledger in the new file ``dest``, taken while it is in use
        (SQLite's online backup API)."""
        with self._lock:
            backup.copy_database(self.conn, dest)

    @classmethod
    def open(cls, path: Path, *, clock: Clock = utcnow) -> Ledger:
        return cls(path, clock=clock)

    @classmethod
    def open_read_only(cls, path: Path, *, clock: Clock = utcnow) -> Ledger:
        """The ledger for a reader that must never change it (`oxi dashboard`): no file is
        created, no migration runs, the journal mode is left alone, and every write fails."""
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"no ledger at {path}",
                              hint="run `oxi tick` first: a reader never creates the ledger")
        try:
            conn = driver.connect_read_only(path)
        except Exception as error:  # the driver's own error types vary
            raise LedgerError(f"cannot open the ledger at {path} to read: {error}",
                              hint="check that the file and its folder are readable") from error
        try:
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except Exception as error:
            conn.close()
            raise LedgerError(f"{path} is not a SQLite database: {error}",
                              hint="point oxi at its own ledger (`oxi ledger path`)") from error
        if not {"events", "tasks", "_migrations"} <= tables:
            conn.close()
            raise LedgerError(f"{path} is not an oxi ledger (it has no events and tasks "
                              "tables)", hint="point oxi at its own ledger (`oxi ledger path`)")
        ledger = cls.__new__(cls)
        ledger.path, ledger.clock = path, clock
        ledger._adopt(conn)
        return ledger

    def _adopt(self, conn: Any) -> None:
        self.conn = conn
        self.conn.row_factory = None
        # Writers outside this module get the WritePath, which redacts what they bind.
        self._writer = WritePath(conn)
        driver.sqlite_module().register_adapter(Verbatim, str)  # bound without adapter lookups
        self._lock = threading.RLock()
        self._depth = 0
        # Migration m012: this ledger's writers keep the spend totals, once per transaction.
        self._keeps_spend = bool(conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spend_mark'").fetchone())

    def _last_event_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def _count_spend(self, before: int, known: tuple[str, str, str] | None) -> None:
        """Add the events this transaction wrote (every id above ``before``, its first, or
        above the last one counted if that is lower: an event another program wrote, or a
        deleted newest event's id given again) to the spend per hour and per day: one
        aggregate per transaction instead of a trigger per row (migration m012).

        ``known``: the time, role and model of every costed event the transaction wrote, when
        its writer knows them; used only when no other event is to be counted."""
        counted, last = self.conn.execute(
            "SELECT events_id, (SELECT coalesce(max(id), 0) FROM events) FROM spend_mark"
        ).fetchone()
        if last == counted == before:
            return
        after = min(int(counted), before)
        if known is not None and counted == before:
            ts, role, model = known
            by_type = self.conn.execute(COSTS_BY_TYPE, (after,)).fetchall()
            if by_type:
                self.conn.execute(ADD_HOUR, (ts[:13], math.fsum(row[1] for row in by_type)))
                self.conn.executemany(ADD_DAY, [(ts[:10], type_, role, model, usd, n)
                                                for type_, usd, n in by_type])
        else:
            self.conn.execute(COUNT_HOURS, (after,))
            self.conn.execute(COUNT_DAYS, (after,))
        self.conn.execute("UPDATE spend_mark SET events_id = ?", (last,))

    def applied_migrations(self) -> set[str]:
        return {row[0] for row in self.query("SELECT name FROM _migrations")}

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees the ledger as of one moment (a read transaction), so figures
        computed by several queries agree with each other."""
        with self._lock:
            if self.conn.in_transaction:  # inside another snapshot or a write: that one holds
                yield
                return
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    def data_version(self) -> int:
        """Moves whenever another connection commits to the ledger (SQLite's data_version):
        how a reader tells that something changed without reading anything."""
        with self._lock:
            return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @cached_property
    def db(self) -> Any:
        """The same connection as a ``sqlite_utils.Database``, for ad-hoc queries and tools."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn, execute_plugins=False)

    def now(self) -> datetime:
        return self.clock()

    def now_iso(self) -> str:
        return isoformat(self.clock())

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[WritePath]:
        """One write transaction (BEGIN IMMEDIATE); nested calls join the outer one. What it
        yields redacts every text bound to a statement unless it is ``Verbatim``."""
        with self._transaction():
            yield self._writer

    @contextmanager
    def _transaction(self, *, spend: tuple[str, str, str] | None = None) -> Iterator[Any]:
        """The same transaction, yielding the raw connection: this module's own statements,
        whose text columns it has redacted one by one already.

        ``spend``: the time, role and model of every costed event written inside, which the
        spend upkeep then need not read from the rows (ignored when this joins an outer
        transaction, which may write others)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                before = self._last_event_id() if self._keeps_spend else 0
                yield self.conn
                if self._keeps_spend:
                    self._count_spend(before, spend)
                self.conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT leaves the transaction open; some errors (SQLITE_FULL,
                # SQLITE_IOERR) end it already, and ROLLBACK would then hide the real error.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    # -- events ---------------------------------------------------------------------------

    def append(
        self,
        type: str,
        *,
        task_id: str | None = None,
        session_id: str | None = None,
        cost_usd: float = 0.0,
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        with self._transaction() as conn:
            return self._insert_event(conn, type, task_id, session_id, cost_usd, payload)

    def append_many(self, events: Iterable[NewEvent]) -> int:
        """Append a batch in one transaction; all land or none do. Returns how many."""
        ts = self.now_iso()
        batch = list(events)
        payloads, as_given = payload_jsons([e.payload for e in batch])
        sessions = _session_ids([e.session_id for e in batch])
        rows = [
            (ts, e.type, e.task_id, session, float(e.cost_usd), payload)
            for e, session, payload in zip(batch, sessions, payloads, strict=True)
        ]
        # Each stored payload its event's own: the spend upkeep can read their fields here.
        key = one_spend_key([e.payload for e, row in zip(batch, rows, strict=True)
                             if row[4]]) if as_given else None
        with self._transaction(spend=None if key is None else (ts, *key)) as conn:
            conn.executemany(_INSERT_EVENT, rows)
        return len(rows)

    def events(
        self,
        *,
        after_id: int = 0,
        types: Iterable[str] | None = None,
        task_id: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        max_payload_chars: int | None = None,
    ) -> list[Event]:
        """``newest_first``: newest by id; for events of given types and any task, newest by
        time, then id, so that the (type, ts) index reads just the newest ones (ordering one
        type's events by id sorted all of them: 190 ms for the 50 newest shadow pairs, 2 s for
        the newest agent events, on 1,000,000 events). Ids and times agree but for clock
        steps between the processes writing.

        ``max_payload_chars``: a longer payload is not read; the event's payload is then
        ``{"oversized_payload": <its length>}`` (for readers that only summarise events)."""
        clauses = ["id > ?"]
        params: list[Any] = [after_id]
        if types is not None:
            wanted = list(types)
            clauses.append(f"type IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if task_id is not None:
            clauses.append("task_id = ?")
            params.append(task_id)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since)
        sql = (
            f"SELECT {event_columns(max_payload_chars)} FROM events WHERE "  # noqa: S608
            + " AND ".join(clauses)
        )
        if not newest_first:
            sql += " ORDER BY id"
        elif types is not None and task_id is None:
            sql += " ORDER BY ts DESC, id DESC"
        else:
            sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self.conn.execute(sql, params).fetchall()
        return [event_from_row(row) for row in rows]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only query outside any write transaction."""
        with self._lock:
            return [tuple(row) for row in self.conn.execute(sql, params).fetchall()]

    def count_events(self, type: str | None = None) -> int:
        with self._lock:
            if type is None:
                row = self.conn.execute("SELECT count(*) FROM events").fetchone()
            else:
                row = self.conn.execute(
                    "SELECT count(*) FROM events WHERE type = ?", (type,)
                ).fetchone()
        return int(row[0])

    def spend_since(self, since: str) -> float:
        """Dollars recorded by events at or after ``since`` (an ISO timestamp, any offset).

        Whole hours come from the per-hour totals (migration m008); only the part of the first
        hour after ``since``, when it is not on the hour, reads events (index events_spend), and
        the events not counted yet (``_uncounted``)."""
        start = parse_ts(since).astimezone(UTC)
        hour = start.replace(minute=0, second=0, microsecond=0)
        uncounted = self._uncounted("AND +ts >= ?")
        with self._lock:
            if hour == start:
                row = self.conn.execute(
                    "SELECT (SELECT coalesce(sum(cost_usd), 0) FROM spend_by_hour "  # noqa: S608
                    f"WHERE hour >= ?){uncounted}",
                    (isoformat(hour)[:13], *self._uncounted_params(isoformat(start))),
                ).fetchone()
            else:
                next_hour = isoformat(hour + timedelta(hours=1))
                row = self.conn.execute(
                    "SELECT (SELECT coalesce(sum(cost_usd), 0) FROM spend_by_hour "  # noqa: S608
                    "WHERE hour >= ?) + (SELECT coalesce(sum(cost_usd), 0) FROM events "
                    f"WHERE ts >= ? AND ts < ? AND cost_usd != 0){uncounted}",
                    (next_hour[:13], isoformat(start), next_hour,
                     *self._uncounted_params(next_hour)),
                ).fetchone()
        return float(row[0])

    def total_spend(self) -> float:
        uncounted = self._uncounted("")
        sql = f"SELECT (SELECT coalesce(sum(cost_usd), 0) FROM spend_by_hour){uncounted}"  # noqa: S608
        with self._lock:
            row = self.conn.execute(sql).fetchone()
        return float(row[0])

    def _uncounted(self, condition: str) -> str:
        """SQL adding the costed events that the totals do not hold yet (migration m012: those
        another program wrote since oxi's last write), under ``condition`` (whose columns
        carry a unary + so that they are read by id above the mark, never by an index on
        them: those would reach every costed event since ``since``)."""
        if not self._keeps_spend:
            return ""
        return (" + (SELECT coalesce(sum(cost_usd), 0) FROM events "  # noqa: S608
                f"WHERE {UNCOUNTED_SPEND} {condition})")

    def _uncounted_params(self, *params: str) -> tuple[str, ...]:
        return params if self._keeps_spend else ()

    # -- the tasks projection -------------------------------------------------------------

    def task(self, task_id: str) -> Task | None:
        with self._lock:
            cursor = self.conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,))
            row = cursor.fetchone()
            description = cursor.description
        return None if row is None else _task_reader(description)(row)

    def tasks(self, statuses: Iterable[str] | None = None, *, limit: int | None = None,
              after: tuple[int, int, str] | None = None) -> list[Task]:
        """Tasks in priority order: tier, then roadmap position; ``after`` a (tier, position,
        id) key when paging."""
        clauses: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            wanted = [str(s) for s in statuses]
            clauses.append(f"status IN ({','.join('?' * len(wanted))})")
            params += wanted
        if after is not None:
            clauses.append("(tier, position, id) > (?, ?, ?)")
            params += list(after)
        sql = "SELECT * FROM tasks"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY tier, position, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._read_tasks(sql, params)

    def tasks_revision(self) -> tuple[int, int]:
        """(revision, deletions): moved by triggers whenever a task changes in a way ingest
        reads (migration m007), whoever wrote it."""
        with self._lock:
            row = self.conn.execute(
                "SELECT revision, deleted FROM tasks_revision WHERE id = 1").fetchone()
        return int(row[0]), int(row[1])

    def tasks_changed_since(self, revision: int) -> list[Task]:
        """Tasks whose ingest-relevant columns changed after ``revision`` (indexed)."""
        return self._read_tasks(
            "SELECT * FROM tasks WHERE revision > ? ORDER BY tier, position, id", (revision,))

    def tasks_named_or_in(self, ids: Iterable[str], statuses: Iterable[str]) -> list[Task]:
        """Tasks whose id is one of ``ids`` or whose status is one of ``statuses`` (ingest's
        full pass: a roadmap's items and the open tasks, never the history behind them)."""
        wanted = [str(s) for s in statuses]
        sql = ("SELECT * FROM tasks WHERE id IN (SELECT value FROM json_each(?)) "  # noqa: S608
               f"OR status IN ({','.join('?' * len(wanted))}) ORDER BY tier, position, id")
        return self._read_tasks(sql, [json.dumps(sorted(set(ids))), *wanted])

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` the ledger has a task for (one indexed read)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT id FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(set(ids))),)).fetchall()
        return {row[0] for row in rows}

    def _read_tasks(self, sql: str, params: Sequence[Any]) -> list[Task]:
        with self._lock:
            cursor = self.conn.execute(sql, params)
            rows = cursor.fetchall()
            read = _task_reader(cursor.description)
        return [read(row) for row in rows]

    def iter_tasks(self, statuses: Iterable[str], *, page: int = 32,
                   first_page: int | None = None) -> Iterator[Task]:
        """Tasks in priority order, read a page at a time: a caller that stops early (the
        dispatcher, once its slots are full) never reads the rest. ``first_page``: a smaller
        first read, for a caller that will most likely want only a few."""
        wanted = [str(s) for s in statuses]
        after: tuple[int, int, str] | None = None
        size = first_page or page
        while True:
            # Keyset paging: claims made while iterating cannot shift what comes next.
            batch = self.tasks(wanted, limit=size, after=after)
            yield from batch
            if len(batch) < size:
                return
            size = page
            last = batch[-1]
            after = (last.tier, last.position, last.id)

    def insert_task(self, task: Task, *, event_type: str, payload: Mapping[str, Any]) -> None:
        values = self._column_values(attrs.asdict(task, recurse=False))
        now = self.now_iso()
        values["created_at"] = now
        values["updated_at"] = now
        columns = ", ".join(values)
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO tasks ({columns}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                list(values.values()),
            )
            self._insert_event(conn, event_type, task.id, None, 0.0, payload)

    def update_task(
        self,
        task_id: str,
        *,
        event_type: str | None,
        payload: Mapping[str, Any] | None = None,
        cost_usd: float = 0.0,
        session_id: str | None = None,
        **fields: Any,
    ) -> None:
        """Change projection fields (not the status) and record why, in one transaction.

        A ``session_id`` is the event's and also becomes the task's current session."""
        if "status" in fields:
            raise ValueError("use transition() to change a task's status")
        if session_id is not None:
            fields.setdefault("session_id", session_id)
        with self._transaction() as conn:
            self._update(conn, task_id, fields, cost_usd)
            if event_type is not None:
                self._insert_event(conn, event_type, task_id, session_id, cost_usd, payload)

    def transition(
        self,
        task_id: str,
        target: TaskStatus,
        *,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
        cost_usd: float = 0.0,
        session_id: str | None = None,
        expect: Iterable[TaskStatus] | None = None,
        **fields: Any,
    ) -> Task | None:
        """Move a task to ``target`` (checked by the state machine) with its event.

        With ``expect``, the move only happens when the current status is one of those, and
        None is returned otherwise (someone else moved the task first).
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise LedgerError(
                    f"no task {task_id} in the ledger",
                    hint="run `oxi tick` to ingest the roadmap first",
                )
            current = row[0]
            if expect is not None and current not in {str(s) for s in expect}:
                return None
            if current != target:
                check_transition(task_id, current, target)
            self._update(conn, task_id, {**fields, "status": str(target)}, cost_usd)
            event_payload = {"from": current, "to": str(target), **(payload or {})}
            self._insert_event(conn, event_type, task_id, session_id, cost_usd, event_payload)
        return self.task(task_id)

    def claim(
        self, task_id: str, *, event_type: str, payload: Mapping[str, Any], **fields: Any
    ) -> bool:
        """Atomically take a planned (or due retrying) task. False when another engine won."""
        now = self.now_iso()
        assignments, values = self._assignments(
            {**fields, "status": str(TaskStatus.DISPATCHED), "last_progress_at": now}
        )
        with self._transaction() as conn:
            cursor = conn.execute(
                f"UPDATE tasks SET {assignments}, attempts = attempts + 1, updated_at = ? "  # noqa: S608
                "WHERE id = ? AND (status = 'planned' OR "
                "(status = 'retrying' AND (retry_due_at IS NULL OR retry_due_at <= ?)))",
                [*values, now, task_id, now],
            )
            if cursor.rowcount != 1:
                return False
            self._insert_event(conn, event_type, task_id, None, 0.0, payload)
        return True

    # -- engine state (killswitch, counters) ----------------------------------------------

    def state_get(self, key: str) -> str | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT value FROM engine_state WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def state_set(
        self,
        key: str,
        value: str | None,
        *,
        event_type: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        with self._transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM engine_state WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO engine_state (key, value, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (key, value, self.now_iso()),
                )
            if event_type is not None:
                self._insert_event(conn, event_type, None, None, 0.0, payload)

    # -- internals ------------------------------------------------------------------------

    def _insert_event(
        self,
        conn: Any,
        type: str,
        task_id: str | None,
        session_id: str | None,
        cost_usd: float,
        payload: Mapping[str, Any] | None,
    ) -> int:
        if session_id:
            session_id = redact_text(session_id)
        cursor = conn.execute(
            _INSERT_EVENT,
            (self.now_iso(), type, task_id, session_id, float(cost_usd), payload_json(payload)),
        )
        event_id: int = cursor.lastrowid
        return event_id

    def _update(self, conn: Any, task_id: str, fields: Mapping[str, Any], cost: float) -> None:
        assignments, values = self._assignments(fields)
        extra = ", cost_usd = cost_usd + ?" if cost else ""
        sql = f"UPDATE tasks SET {assignments}{extra}, updated_at = ? WHERE id = ?"  # noqa: S608
        params = [*values, *([cost] if cost else []), self.now_iso(), task_id]
        if not fields:
            sql = f"UPDATE tasks SET updated_at = ?{extra} WHERE id = ?"  # noqa: S608
            params = [self.now_iso(), *([cost] if cost else []), task_id]
        cursor = conn.execute(sql, params)
        if cursor.rowcount != 1:
            raise LedgerError(
                f"no task {task_id} in the ledger",
                hint="run `oxi tick` to ingest the roadmap first",
            )

    def _assignments(self, fields: Mapping[str, Any]) -> tuple[str, list[Any]]:
        values = self._column_values(fields)
        return ", ".join(f"{name} = ?" for name in values), list(values.values())

    @staticmethod
    def _column_values(fields: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(fields) - TASK_COLUMNS
        if unknown:
            raise ValueError(f"not task columns: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name in _JSON_TASK_COLUMNS:
                value = json.dumps(list(value))
            elif name in ("in_roadmap", "budget_released"):
                value = int(bool(value))
            elif isinstance(value, TaskStatus):
                value = str(value)
            elif isinstance(value, str) and name not in _VERBATIM_TASK_COLUMNS:
                value = redact_text(value)
            values[name] = value
        return values
