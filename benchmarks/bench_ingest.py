"""Ingest with a long history: a 1,000-item roadmap over a ledger of 100,000 tasks.

    .venv/bin/python benchmarks/bench_ingest.py [--tasks 100000] [--items 1000] [--repeat 15]

Most of the tasks are history (merged, abandoned, done: items long gone from the roadmap); the
roadmap's 1,000 items are the open ones. Measured in the same run, on the same ledger:
- every task read and diffed against the roadmap (what every pass did before migration m007);
- the full pass, what a pass with no mark to start from does (a new roadmap, a first tick):
  only the roadmap's ids and the open tasks are read;
- the incremental pass after one task changed (a dispatch, a merge): only rows whose tasks
  revision moved are read;
- the check an idle tick makes (nothing changed: one row read).
No target was set; the figures are for the note.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oxi_core.engine.ingest import apply_ingest, diff_roadmap  # noqa: E402
from oxi_core.ledger import Ledger  # noqa: E402
from oxi_core.ledger import events as ev  # noqa: E402
from oxi_core.roadmap import parse_roadmap  # noqa: E402
from oxi_core.tasks import Task, TaskStatus  # noqa: E402

HISTORY = (TaskStatus.MERGED, TaskStatus.ABANDONED, TaskStatus.DONE)


def roadmap_text(items: int) -> str:
    lines = ["# bench", ""]
    for n in range(1, items + 1):
        lines += [f"**T2-{n} · open item {n}**", f"_touches `src/f{n}.py`_", ""]
    return "\n".join(lines)


def build(ledger: Ledger, tasks: int, items: int) -> None:
    with ledger.transaction():
        for n in range(tasks - items):  # history: ids no longer on the roadmap
            status = HISTORY[n % len(HISTORY)]
            ledger.insert_task(Task(id=f"T3-{n + 1}", tier=3, title=f"old {n}", status=status,
                                    in_roadmap=status is not TaskStatus.ABANDONED),
                               event_type=ev.TASK_INGESTED, payload={})


def timed(body: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        body()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="oxi-bench-ingest-"))
    roadmap = parse_roadmap(roadmap_text(args.items))
    with Ledger(folder / "oxi.db") as ledger:
        started = time.perf_counter()
        build(ledger, args.tasks, args.items)
        first = apply_ingest(ledger, roadmap, digest="bench")  # the roadmap's items arrive
        print(f"built {ledger.query('SELECT count(*) FROM tasks')[0][0]} tasks in "
              f"{time.perf_counter() - started:.1f}s ({len(first.changes)} from the roadmap)")
        mark = first.mark

        def every_task() -> None:
            assert not diff_roadmap(ledger.tasks(), roadmap)

        def full() -> None:
            assert not apply_ingest(ledger, roadmap, digest="bench").changes

        def one_changed() -> None:
            nonlocal mark
            ledger.update_task("T2-7", event_type=None, files_touched=(f"x{time.time()}.py",))
            done = apply_ingest(ledger, roadmap, digest="bench", since=mark.revision)
            assert [c.task_id for c in done.changes] == ["T2-7"]
            mark = done.mark

        def idle() -> None:
            assert ledger.tasks_revision() == (mark.revision, mark.deleted)

        rows = [("every task read and diffed (before m007)",
                 timed(every_task, max(3, args.repeat // 3))),
                ("full pass: the roadmap's ids and open tasks", timed(full, args.repeat)),
                ("incremental pass after one task changed", timed(one_changed, args.repeat)),
                ("idle tick's check (nothing changed)", timed(idle, args.repeat * 10))]
    print(f"\n{'measure':<46}{'median ms':>11}{'p95 ms':>9}")
    for label, samples in rows:
        samples.sort()
        print(f"{label:<46}{statistics.median(samples) * 1000:>11.2f}"
              f"{samples[int(0.95 * (len(samples) - 1))] * 1000:>9.2f}")


if __name__ == "__main__":
    main()
