"""Ledger writes against raw inserts through the same driver, measured in the same run.

    .venv/bin/python benchmarks/bench_ledger.py [--quick] [--singles 5000]

- batched ``Ledger.append_many`` (1,000 events a batch, each with a cost: the worst case for
  the spend upkeep) against raw ``executemany`` of the same rows, their JSON encoded before
  the timing: into a plain events table with the ledger's indexes but no trigger, and into a
  file with the ledger's own schema (every table, index and trigger its migrations make) plus
  the spend upkeep that schema asks of every writer (migration m012: one aggregate per
  transaction into spend_by_hour and spend_by_day, and the mark). The order rotates batch by
  batch; each figure is the median of the per-batch ratios;
- single ``Ledger.append`` latency (p50/p95/p99) vs one raw ``INSERT`` per transaction.

Goals (issue 14): batched >= 50% of the plain table's rate and >= 90% of the same schema's;
single append p95 <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PROFILES, Profile, Row, load_average, table

from oxi_core.ledger import Ledger, NewEvent, driver
from oxi_core.ledger import events as ev
from oxi_core.ledger.migrations import COUNT_DAYS, COUNT_HOURS

INSERT = (
    "INSERT INTO events (ts, type, task_id, session_id, cost_usd, payload) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
TS = "2026-11-23T12:00:00.000000+00:00"


def small_payload(n: int) -> dict[str, Any]:
    """A bookkeeping event (claim, heartbeat, tick): a few short fields, about 60 bytes."""
    return {"engine": "host-1", "attempt": n % 3 + 1, "slot": n % 4}


def payload(n: int) -> dict[str, Any]:
    """A realistic agent event: a few fields and a line of tool output (about 300 bytes)."""
    return {
        "kind": "tool_result",
        "tool": "Bash",
        "seq": n,
        "tokens": {"in": 1200 + n % 50, "out": 80},
        "text": f"$ pytest tests/test_ledger.py -q\n{n % 97} passed in 1.{n % 10}s\n"
        "collected 97 items / 0 errors; warnings summary: none; coverage 91% (oxi_core)",
    }


def raw_connection(path: Path) -> Any:
    conn = driver.sqlite_module().connect(str(path), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, type TEXT NOT NULL, "
        "task_id TEXT, session_id TEXT, cost_usd REAL NOT NULL DEFAULT 0, "
        "payload TEXT NOT NULL DEFAULT '{}')"
    )
    return conn


def copy_indexes(ledger: Ledger, conn: Any) -> None:
    """The ledger's indexes on events, so the raw table pays the same index upkeep."""
    for (sql,) in ledger.conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
        "AND sql IS NOT NULL"
    ):
        conn.execute(sql)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_singles(ledger: Ledger, conn: Any, total: int, rounds: int) -> dict[str, list[float]]:
    per_round = total // rounds
    out: dict[str, list[float]] = {"ledger": [], "raw": []}
    counter = 0
    for _ in range(rounds):
        for _ in range(per_round):
            body = payload(counter)
            start = time.perf_counter_ns()
            ledger.append(
                ev.AGENT_EVENT, task_id="T1-4", session_id="s-1", cost_usd=0.0, payload=body
            )
            out["ledger"].append((time.perf_counter_ns() - start) / 1e6)
            counter += 1
        for _ in range(per_round):
            text = json.dumps(payload(counter), sort_keys=True, separators=(",", ":"))
            start = time.perf_counter_ns()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT, (TS, ev.AGENT_EVENT, "T1-4", "s-1", 0.0, text))
            conn.execute("COMMIT")
            out["raw"].append((time.perf_counter_ns() - start) / 1e6)
            counter += 1
    return out


def raw_connection_like_the_ledger(path: Path) -> Any:
    """A raw connection to a file with the ledger's own schema: every table, index and
    trigger its migrations make."""
    from oxi_core.ledger.migrations import apply_migrations

    conn = driver.sqlite_module().connect(str(path), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    apply_migrations(conn)
    return conn


def keep_spend(conn: Any, before: int) -> None:
    """What migration m012 asks of a writer after its inserts, in plain SQL (the ledger's own
    statements): the new events added to the spend per hour and per day, and the mark moved."""
    conn.execute(COUNT_HOURS, (before,))
    conn.execute(COUNT_DAYS, (before,))
    conn.execute("UPDATE spend_mark SET events_id = (SELECT max(id) FROM events)")


def costed_batch(b: int, size: int, make: Callable[[int], dict[str, Any]]) -> list[NewEvent]:
    """A batch of agent events that each cost money (the worst case for spend upkeep)."""
    return [NewEvent(ev.AGENT_EVENT, task_id=f"T1-{b % 40}", session_id="s-2", cost_usd=0.001,
                     payload=make(i)) for i in range(size)]


def raw_rows(events: list[NewEvent]) -> list[tuple[Any, ...]]:
    """The rows as the raw baseline inserts them: payloads serialised before the timing."""
    return [(TS, e.type, e.task_id, e.session_id, e.cost_usd,
             json.dumps(e.payload, sort_keys=True, separators=(",", ":"))) for e in events]


def bench_batches(ledger: Ledger, raws: dict[str, Any], batches: int, size: int,
                  make: Callable[[int], dict[str, Any]]) -> dict[str, list[float]]:
    """Seconds per batch: ``Ledger.append_many`` and each raw ``executemany``, the order
    rotating batch by batch so that a noisy neighbour hurts them alike."""
    out: dict[str, list[float]] = {"ledger": [], **{name: [] for name in raws}}
    for b in range(batches):
        events = costed_batch(b, size, make)
        rows = raw_rows(events)

        def ledger_batch(events: list[NewEvent] = events) -> None:
            ledger.append_many(events)

        def raw_batch(conn: Any, upkeep: bool, rows: list[tuple[Any, ...]] = rows) -> None:
            conn.execute("BEGIN IMMEDIATE")
            if upkeep:
                before = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            conn.executemany(INSERT, rows)
            if upkeep:
                keep_spend(conn, before)
            conn.execute("COMMIT")

        runs: list[tuple[str, Callable[[], None]]] = [("ledger", ledger_batch)] + [
            (name, lambda conn=conn, name=name: raw_batch(conn, name == "schema"))
            for name, conn in raws.items()]
        shift = b % len(runs)
        for name, run in runs[shift:] + runs[:shift]:
            start = time.perf_counter()
            run()
            out[name].append(time.perf_counter() - start)
    return out


def ratio(out: dict[str, list[float]], baseline: str) -> float:
    """Median over batches of ledger time / baseline time (paired batch by batch)."""
    return statistics.median(a / b for a, b in zip(out["ledger"], out[baseline], strict=True))


def rows(profile: Profile, python: str) -> list[Row]:
    del python  # in process: the ledger's own speed
    size = 1000
    with tempfile.TemporaryDirectory(prefix="oxi-bench-ledger-") as tmp:
        ledger = Ledger(Path(tmp) / "ledger.db")
        plain = raw_connection(Path(tmp) / "plain.db")
        copy_indexes(ledger, plain)
        raws = {"plain": plain, "schema": raw_connection_like_the_ledger(Path(tmp) / "schema.db")}
        bench_batches(ledger, raws, 3, size, payload)  # warm-up
        out = bench_batches(ledger, raws, profile.batches, size, payload)
        ledger.close()
        for conn in raws.values():
            conn.close()
    rate = {name: size / statistics.median(times) for name, times in out.items()}
    plain_ratio, schema = ratio(out, "plain"), ratio(out, "schema")
    return [
        Row("ledger_plain", f"Ledger.append_many, {size:,} costed events a batch, vs raw "
            "executemany into a plain events table with the ledger's indexes, no trigger (JSON "
            "encoded beforehand)", plain_ratio, 2.0,
            f"{1 / plain_ratio:.0%}", ">= 50%",
            f"{rate['ledger']:,.0f} vs {rate['plain']:,.0f} rows/s",
            "benchmarks/bench_ledger.py"),
        Row("ledger_schema", "the same vs raw executemany into a file with the ledger's own "
            "schema (tables, indexes, triggers) and its spend upkeep in SQL (m012)", schema,
            1 / 0.9, f"{1 / schema:.0%}",
            ">= 90%", f"{rate['ledger']:,.0f} vs {rate['schema']:,.0f} rows/s",
            "benchmarks/bench_ledger.py"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI profile")
    parser.add_argument("--singles", type=int, default=5000)
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    module = driver.sqlite_module()
    print(f"driver: {module.__name__} (SQLite {module.sqlite_version}), WAL, synchronous=NORMAL")
    print(table(rows(PROFILES["quick" if args.quick else "full"], sys.executable)))
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp) / "ledger.db")
        conn = raw_connection(Path(tmp) / "raw.db")
        copy_indexes(ledger, conn)
        bench_singles(ledger, conn, 200, 1)  # warm-up
        singles = bench_singles(ledger, conn, args.singles, 5)
        ledger.close()
        conn.close()
    print(f"\nsingle append, {len(singles['ledger'])} each          p50 ms   p95 ms   p99 ms")
    for name, label in (("ledger", "Ledger.append"), ("raw", "raw INSERT + COMMIT")):
        values = singles[name]
        print(f"  {label:<32}{percentile(values, 0.50):7.3f}  {percentile(values, 0.95):7.3f}"
              f"  {percentile(values, 0.99):7.3f}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
