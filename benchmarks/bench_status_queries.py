"""`oxi status`-style queries on a 1,000,000-event ledger.

    .venv/bin/python benchmarks/bench_status_queries.py [--events 1000000] [--days 10]
        [--tasks 1000] [--repeat 25] [--keep PATH]

Builds a ledger with append_many in batches of 1,000, 50 batches to a transaction (a fake
clock spreads the batches over ``--days`` days, so "today" holds about a tenth of the events),
with a realistic mix of event types, task ids and costs, plus ~1,000 tasks in every status.
Then times, on a fresh connection, each query `oxi status` and the budget gate run (median and
p95 of ``--repeat`` runs) and prints the query plan SQLite chose for it. The spend queries are
also timed as they ran before migration m006 (forced onto the old index with INDEXED BY, or
onto the table with NOT INDEXED), for comparison in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oxi_core.ledger import Ledger, NewEvent
from oxi_core.ledger import events as ev
from oxi_core.models import isoformat
from oxi_core.tasks import Task, TaskStatus

START = datetime(2026, 11, 14, 0, 0, tzinfo=UTC)
BATCH = 1_000
BATCHES_PER_COMMIT = 50

# (event type, weight, cost range in dollars)
MIX: list[tuple[str, int, tuple[float, float]]] = [
    (ev.AGENT_EVENT, 780, (0.0, 0.0)),
    (ev.TASK_DEFERRED, 60, (0.0, 0.0)),
    (ev.TICK_STARTED, 25, (0.0, 0.0)),
    (ev.TICK_FINISHED, 25, (0.0, 0.0)),
    (ev.TASK_CLAIMED, 15, (0.0, 0.0)),
    (ev.WORKER_STARTED, 15, (0.0, 0.0)),
    (ev.WORKTREE_CREATED, 15, (0.0, 0.0)),
    (ev.DISPATCH_RESULT, 15, (0.05, 2.50)),
    (ev.CRITIC_VERDICT, 12, (0.01, 0.30)),
    (ev.PR_OPENED, 10, (0.0, 0.0)),
    (ev.BRANCH_PUSHED, 10, (0.0, 0.0)),
    (ev.AUTO_MERGE_ARMED, 6, (0.0, 0.0)),
    (ev.PR_MERGED, 6, (0.0, 0.0)),
    (ev.RETRY_SCHEDULED, 4, (0.0, 0.0)),
    (ev.DISPATCH_ERROR, 2, (0.0, 0.0)),
]
STATUS_MIX = [
    (TaskStatus.PLANNED, 40),
    (TaskStatus.MERGED, 28),
    (TaskStatus.ABANDONED, 9),
    (TaskStatus.IN_REVIEW, 5),
    (TaskStatus.FAILED, 5),
    (TaskStatus.HELD, 3),
    (TaskStatus.DONE, 5),
    (TaskStatus.DISPATCHED, 3),
    (TaskStatus.RETRYING, 2),
]


class StepClock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment


def task_ids(count: int) -> list[str]:
    return [f"T{1 + n % 4}-{n // 4 + 1}" for n in range(count)]


def build(path: Path, events: int, days: int, tasks: int, seed: int = 7) -> float:
    rng = random.Random(seed)
    clock = StepClock(START)
    ids = task_ids(tasks)
    types = [t for t, _, _ in MIX]
    weights = [w for _, w, _ in MIX]
    costs = {t: c for t, _, c in MIX}
    batches = events // BATCH
    step = timedelta(days=days) / batches
    started = time.perf_counter()
    with Ledger(path, clock=clock) as ledger:
        with ledger.transaction():
            for n, task_id in enumerate(ids):
                status = rng.choices(*zip(*STATUS_MIX, strict=True))[0]
                task = Task(
                    id=task_id,
                    tier=int(task_id[1]),
                    title=f"roadmap item {n}",
                    status=status,
                    position=n,
                    attempts=rng.randint(0, 3),
                    cost_usd=round(rng.uniform(0, 12), 2),
                )
                ledger.insert_task(task, event_type=ev.TASK_INGESTED, payload={"title": task.title})
        for first in range(0, batches, BATCHES_PER_COMMIT):
            # Nested transactions join the outer one: fewer commits and checkpoints.
            with ledger.transaction():
                for b in range(first, min(first + BATCHES_PER_COMMIT, batches)):
                    ledger.append_many(make_batch(rng, b, types, weights, costs, ids))
                    clock.moment += step
    return time.perf_counter() - started


def make_batch(
    rng: random.Random,
    b: int,
    types: list[str],
    weights: list[int],
    costs: dict[str, tuple[float, float]],
    ids: list[str],
) -> list[NewEvent]:
    batch = []
    for k, etype in enumerate(rng.choices(types, weights, k=BATCH)):
        low, high = costs[etype]
        task_id = None if etype in (ev.TICK_STARTED, ev.TICK_FINISHED) else rng.choice(ids)
        payload: dict[str, Any] = {"seq": b * BATCH + k}
        if etype == ev.AGENT_EVENT:
            payload["kind"] = "tool_result"
            payload["text"] = f"ran pytest: {rng.randint(1, 400)} passed, 0 failed"
        batch.append(
            NewEvent(
                etype,
                task_id=task_id,
                session_id=f"s-{b // 10}",
                cost_usd=round(rng.uniform(low, high), 4) if high else 0.0,
                payload=payload,
            )
        )
    return batch


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    result = fn()  # warm: the first run reads pages from the OS cache into SQLite's
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, result


def plan(ledger: Ledger, sql: str, params: tuple[Any, ...]) -> str:
    rows = ledger.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return "; ".join(str(row[-1]) for row in rows)


def _status_report() -> Callable[[Ledger], Any] | None:
    try:
        from oxi_core.status import status_report
    except ImportError:  # not there yet in this checkout
        return None
    return status_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the ledger at this path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "oxi.db"
        if not path.exists():
            seconds = build(path, args.events, args.days, args.tasks)
            print(
                f"built {args.events:,} events + {args.tasks:,} tasks in {seconds:.1f} s "
                f"({args.events / seconds:,.0f} events/s), "
                f"{path.stat().st_size / 2**20:.0f} MiB"
            )
        end = START + timedelta(days=args.days)
        today = isoformat((end - timedelta(seconds=1)).replace(hour=0, minute=0, second=0))
        week = isoformat(end - timedelta(days=7))
        one_task = task_ids(args.tasks)[args.tasks // 2]

        with Ledger(path) as ledger:
            migrations = [r[0] for r in ledger.conn.execute("SELECT name FROM _migrations")]
            print(f"migrations: {', '.join(migrations)}")
            queries: list[tuple[str, Callable[[], Any], str, tuple[Any, ...]]] = [
                (
                    "spend today (spend_since)",
                    lambda: ledger.spend_since(today),
                    "SELECT coalesce(sum(cost_usd), 0) FROM events WHERE ts >= ? AND cost_usd != 0",
                    (today,),
                ),
                (
                    "spend last 7 days",
                    lambda: ledger.spend_since(week),
                    "SELECT coalesce(sum(cost_usd), 0) FROM events WHERE ts >= ? AND cost_usd != 0",
                    (week,),
                ),
                (
                    "tasks by status (GROUP BY)",
                    lambda: ledger.conn.execute(
                        "SELECT status, count(*) FROM tasks GROUP BY status"
                    ).fetchall(),
                    "SELECT status, count(*) FROM tasks GROUP BY status",
                    (),
                ),
                (
                    "all tasks as Task objects",
                    lambda: len(ledger.tasks()),
                    "SELECT * FROM tasks ORDER BY tier, position, id",
                    (),
                ),
                (
                    "last 20 events",
                    lambda: len(ledger.events(newest_first=True, limit=20)),
                    "SELECT * FROM events WHERE id > ? ORDER BY id DESC LIMIT 20",
                    (0,),
                ),
                (
                    f"events of one task ({one_task})",
                    lambda: len(ledger.events(task_id=one_task)),
                    "SELECT * FROM events WHERE id > ? AND task_id = ? ORDER BY id",
                    (0, one_task),
                ),
                (
                    "count of one type (dispatch_result)",
                    lambda: ledger.count_events(ev.DISPATCH_RESULT),
                    "SELECT count(*) FROM events WHERE type = ?",
                    (ev.DISPATCH_RESULT,),
                ),
                (
                    "count of all events",
                    lambda: ledger.count_events(),
                    "SELECT count(*) FROM events",
                    (),
                ),
                (
                    "total spend (total_spend)",
                    ledger.total_spend,
                    "SELECT coalesce(sum(cost_usd), 0) FROM events WHERE cost_usd != 0",
                    (),
                ),
                (
                    f"last claim of one task ({one_task})",
                    lambda: len(
                        ledger.events(
                            types=[ev.TASK_CLAIMED], task_id=one_task, newest_first=True, limit=1
                        )
                    ),
                    "SELECT * FROM events WHERE id > ? AND type IN (?) AND task_id = ? "
                    "ORDER BY id DESC LIMIT 1",
                    (0, ev.TASK_CLAIMED, one_task),
                ),
            ]
            before = "(before m006)"
            queries += [
                (
                    f"spend today {before}",
                    lambda: ledger.conn.execute(
                        "SELECT coalesce(sum(cost_usd), 0) FROM events INDEXED BY events_ts "
                        "WHERE ts >= ?",
                        (today,),
                    ).fetchone()[0],
                    "",
                    (),
                ),
                (
                    f"spend last 7 days {before}",
                    lambda: ledger.conn.execute(
                        "SELECT coalesce(sum(cost_usd), 0) FROM events INDEXED BY events_ts "
                        "WHERE ts >= ?",
                        (week,),
                    ).fetchone()[0],
                    "",
                    (),
                ),
                (
                    f"total spend {before}",
                    lambda: ledger.conn.execute(
                        "SELECT coalesce(sum(cost_usd), 0) FROM events NOT INDEXED"
                    ).fetchone()[0],
                    "",
                    (),
                ),
            ]
            report = _status_report()
            if report is not None:
                queries.append(("whole `oxi status` report", lambda: len(report(ledger)), "", ()))
            print()
            print(f"{'query':<40}{'median ms':>10}{'p95 ms':>9}  result")
            plans = []
            for name, fn, sql, params in queries:
                samples, result = timed(fn, args.repeat)
                shown = f"{result:,.2f}" if isinstance(result, float) else str(result)
                if len(shown) > 40:
                    shown = shown[:37] + "..."
                print(
                    f"{name:<40}{statistics.median(samples):10.2f}"
                    f"{percentile(samples, 0.95):9.2f}  {shown}"
                )
                if sql:
                    plans.append((name, plan(ledger, sql, params)))
            print()
            print("query plans")
            for name, text in plans:
                print(f"  {name}: {text}")


if __name__ == "__main__":
    main()
