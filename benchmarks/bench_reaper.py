"""The reaper's scan on a ledger of 100,000 tasks, a handful of them dispatched.

    .venv/bin/python benchmarks/bench_reaper.py [--tasks 100000] [--dispatched 5]
        [--repeat 50] [--keep PATH]

Builds a ledger with ``--tasks`` tasks (one task_ingested event each) in a realistic mix of
statuses, of which ``--dispatched`` are dispatched to live workers (real sleeping processes)
under a live supervisor (this process), so nothing is reaped: the steady state, which runs at
the head of every tick. Then times, on a fresh connection (median and p95 of ``--repeat``):

- ``reap_zombies()``: the whole scan, liveness checks (psutil) included. Target: <= 50 ms.
- the bare ``SELECT`` of dispatched rows it starts from, as a baseline;
- ``ledger.tasks([dispatched])`` (the same rows as Task objects);
- ``liveness()`` for one dispatched task (two psutil lookups);
- one zombie's extra cost: ``orphaned_group_members()``, which walks the process table to find
  what is left of a dead worker's process group (paid only when a task is reaped);
- ``Engine.agents_in_flight()``, the slot count each dispatch and saturate's wake-up poll run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oxi_core.engine.engine import AGENTS_IN_FLIGHT_SQL  # noqa: E402
from oxi_core.engine.reaper import (  # noqa: E402
    liveness,
    orphaned_group_members,
    process_start_time,
    reap_zombies,
    this_host,
)
from oxi_core.ledger import Ledger  # noqa: E402
from oxi_core.ledger import events as ev  # noqa: E402
from oxi_core.models import isoformat, utcnow  # noqa: E402
from oxi_core.tasks import Task, TaskStatus  # noqa: E402

STATUS_MIX = [
    (TaskStatus.MERGED, 55), (TaskStatus.ABANDONED, 15), (TaskStatus.PLANNED, 15),
    (TaskStatus.DONE, 6), (TaskStatus.FAILED, 4), (TaskStatus.IN_REVIEW, 3),
    (TaskStatus.HELD, 1), (TaskStatus.RETRYING, 1),
]


def build(path: Path, tasks: int, workers: list[tuple[int, float]], seed: int = 11) -> float:
    rng = random.Random(seed)
    statuses = [s for s, _ in STATUS_MIX]
    weights = [w for _, w in STATUS_MIX]
    supervisor = os.getpid()
    supervisor_started = process_start_time(supervisor)
    old = isoformat(utcnow() - timedelta(hours=3))  # every heartbeat is long stale
    started = time.perf_counter()
    with Ledger(path) as ledger, ledger.transaction():
        dispatched = set(rng.sample(range(tasks), len(workers)))
        live = iter(workers)
        for n in range(tasks):
            fields: dict[str, Any] = {}
            if n in dispatched:
                pid, pid_started = next(live)
                status = TaskStatus.DISPATCHED
                fields = {"worker_host": this_host(), "worker_pid": pid, "worker_pgid": pid,
                          "worker_started_at": pid_started, "supervisor_pid": supervisor,
                          "supervisor_started_at": supervisor_started,
                          "last_progress_at": old, "attempts": 1}
            else:
                status = rng.choices(statuses, weights)[0]
            task = Task(id=f"T{1 + n % 4}-{n // 4 + 1}", tier=1 + n % 4, title=f"item {n}",
                        status=status, position=n // 4, files_touched=(f"src/m{n % 500}.py",),
                        **fields)
            ledger.insert_task(task, event_type=ev.TASK_INGESTED, payload={"tier": task.tier})
    return time.perf_counter() - started


def timed(body: Callable[[], object], repeat: int) -> tuple[float, float]:
    body()  # warm
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        body()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--dispatched", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()

    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                 start_new_session=True, stdin=subprocess.DEVNULL)
                for _ in range(args.dispatched)]
    try:
        workers = [(p.pid, process_start_time(p.pid) or 0.0) for p in sleepers]
        with tempfile.TemporaryDirectory(prefix="oxi-bench-reaper-") as folder:
            path = args.keep or Path(folder) / "oxi.db"
            if path.exists():
                raise SystemExit(f"{path} exists; remove it or choose another --keep")
            took = build(path, args.tasks, workers)
            size = path.stat().st_size / 2**20
            print(f"built {args.tasks:,} tasks ({args.dispatched} dispatched, live) in "
                  f"{took:.1f} s; {size:.0f} MiB")
            run(path, args)
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()


def run(path: Path, args: argparse.Namespace) -> None:
    ledger = Ledger(path)
    now = utcnow()

    def scan() -> object:
        reaped = reap_zombies(ledger, now=now, timeout_s=1800)
        assert reaped == [], reaped
        return reaped

    dispatched = ledger.tasks([TaskStatus.DISPATCHED])
    assert len(dispatched) == args.dispatched
    one = dispatched[0]
    rows: list[tuple[str, Callable[[], object]]] = [
        ("reap_zombies() scan, nothing to reap", scan),
        ("bare SELECT * ... WHERE status = 'dispatched'", lambda: ledger.conn.execute(
            "SELECT * FROM tasks WHERE status = 'dispatched'").fetchall()),
        ("ledger.tasks([dispatched]) as Task objects",
         lambda: ledger.tasks([TaskStatus.DISPATCHED])),
        ("liveness() of one task (psutil)",
         lambda: liveness(one, now=now, timeout_s=1800)),
        ("orphaned_group_members() (per reaped zombie)", lambda: orphaned_group_members(
            Task(id="T9-1", tier=9, title="gone", status=TaskStatus.DISPATCHED,
                 worker_pid=2**22 - 3, worker_pgid=2**22 - 3, worker_started_at=1.0))),
        ("agents_in_flight() slot count", lambda: ledger.query(
            AGENTS_IN_FLIGHT_SQL, (ev.DISPATCH_RESULT,))),
    ]
    print(f"{'':<48} {'median ms':>10} {'p95 ms':>8}")
    for label, body in rows:
        median, p95 = timed(body, args.repeat)
        print(f"{label:<48} {median:>10.3f} {p95:>8.3f}")
    plan = ledger.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE status IN (?) "
        "ORDER BY tier, position, id", ("dispatched",)).fetchall()
    print("plan of the reaper's query:", "; ".join(str(row[-1]) for row in plan))
    ledger.close()


if __name__ == "__main__":
    main()
