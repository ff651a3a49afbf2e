"""Tick overhead: a no-op tick, and the engine's own time per dispatched task.

Setting: a 1,000-item roadmap and a 100,000-event ledger. The baseline, measured in the same
run, is one bare `git worktree add` (and its removal) in the same repository.

    .venv/bin/python benchmarks/bench_tick.py [--tasks 20] [--events 100000] [--items 1000]

Targets: a tick with nothing to do <= 50 ms; per-task overhead (wall time of a tick that
dispatches N tasks to an agent that only writes one file, minus the agents' own run time,
divided by N) <= 3x one `git worktree add`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oxi_core.config import load_config  # noqa: E402
from oxi_core.engine.engine import Engine  # noqa: E402
from oxi_core.ledger import NewEvent  # noqa: E402
from oxi_core.ledger import events as ev  # noqa: E402
from oxi_core.tasks import TaskStatus  # noqa: E402
from oxi_core.testing.repos import exec_agent_toml, make_repo, run_git  # noqa: E402

AGENT = [sys.executable, "-c",
         "import os, pathlib; pathlib.Path(os.environ['OXI_TASK_ID'] + '.txt').write_text('x')"]


def roadmap(count: int) -> str:
    lines = ["# bench", ""]
    for n in range(1, count + 1):
        lines += [f"**T2-{n} · item number {n}**", f"_touches `files/f{n}.txt`_", ""]
    return "\n".join(lines)


def worktree_add_baseline(repo: Path, runs: int) -> list[float]:
    times = []
    for n in range(runs):
        path = repo / ".oxi" / "bench-wt" / str(n)
        start = time.perf_counter()
        run_git(["worktree", "add", "-q", "--detach", str(path), "origin/main"], repo)
        times.append(time.perf_counter() - start)
        run_git(["worktree", "remove", "--force", str(path)], repo)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="oxi-bench-tick-"))
    repo = make_repo(base, {"roadmap.md": roadmap(args.items)})
    repo.write("oxi.toml", exec_agent_toml(AGENT, engine={
        "max_concurrent": args.tasks, "auto_merge": False}))
    config = load_config(repo.config)
    engine = Engine(config, capacity=lambda: 0)  # ingest the roadmap, dispatch nothing
    asyncio.run(engine.run_once())
    engine.ledger.append_many(
        NewEvent(ev.AGENT_EVENT, task_id=f"T2-{n % args.items + 1}", cost_usd=0.0001,
                 payload={"n": n}) for n in range(args.events))
    print(f"repo {repo.root}: {args.items} roadmap items, "
          f"{engine.ledger.count_events()} events")

    # A tick with nothing to do: slots are free but every task has landed already.
    engine.ledger.query("SELECT 1")  # the connection is ready
    with engine.ledger.transaction() as conn:
        conn.execute("UPDATE tasks SET status = 'merged'")
    idle_engine = Engine(load_config(repo.config), capacity=lambda: args.tasks)
    idle: list[float] = []
    for _ in range(15):
        start = time.perf_counter()
        report = asyncio.run(idle_engine.tick())
        idle.append(time.perf_counter() - start)
        assert not report.dispatched
        assert not report.ingested
    # The same in a fresh engine each time (what a cron'd `oxi tick` pays: the roadmap is
    # parsed and diffed anew; process start-up and config loading are not counted).
    fresh: list[float] = []
    for _ in range(5):
        cold = Engine(load_config(repo.config), capacity=lambda: args.tasks)
        asyncio.run(cold.tick())  # its first tick also sweeps worktrees once
        start = time.perf_counter()
        cold._quiet_ingest, cold._roadmap_cache = None, None
        asyncio.run(cold.tick())
        fresh.append(time.perf_counter() - start)
    with engine.ledger.transaction() as conn:
        conn.execute("UPDATE tasks SET status = 'planned'")
    baseline = worktree_add_baseline(repo.root, 15)

    # Dispatch N tasks in one tick with an agent that writes one file and exits.
    busy = Engine(load_config(repo.config), capacity=lambda: args.tasks)
    start = time.perf_counter()
    report = asyncio.run(busy.run_once())
    wall = time.perf_counter() - start
    assert len(report.dispatched) == args.tasks, report.dispatched
    results = busy.ledger.events(types=[ev.DISPATCH_RESULT])
    agent_time = sum(e.payload["duration_s"] for e in results)
    in_review = len(busy.ledger.tasks([TaskStatus.IN_REVIEW]))
    # Workers overlap, so count engine time per task as (wall x slots - agent time) / tasks
    # only when serial; report both the serial-equivalent and the wall-clock figure.
    serial = Engine(load_config(repo.config), capacity=lambda: 1)
    serial_times = []
    for _ in range(5):
        start = time.perf_counter()
        one = asyncio.run(serial.run_once())
        serial_times.append(time.perf_counter() - start)
        assert len(one.dispatched) == 1
    serial_agent = [e.payload["duration_s"] for e in
                    serial.ledger.events(types=[ev.DISPATCH_RESULT], newest_first=True,
                                         limit=5)]
    overhead = statistics.median(t - a for t, a in zip(serial_times, reversed(serial_agent),
                                                       strict=True))
    wt = statistics.median(baseline)

    print()
    print(f"{'measure':<58}{'median ms':>10}{'p95 ms':>9}")
    print(f"{'no-op tick (nothing to do)':<58}{statistics.median(idle) * 1000:>10.1f}"
          f"{sorted(idle)[int(len(idle) * 0.95) - 1] * 1000:>9.1f}")
    print(f"{'no-op tick, roadmap parsed and diffed anew':<58}"
          f"{statistics.median(fresh) * 1000:>10.1f}{max(fresh) * 1000:>9.1f}")
    print(f"{'baseline: one bare git worktree add':<58}{wt * 1000:>10.1f}"
          f"{sorted(baseline)[int(len(baseline) * 0.95) - 1] * 1000:>9.1f}")
    print(f"{'engine time per task, one task per tick (minus agent)':<58}"
          f"{overhead * 1000:>10.1f}")
    print(f"{f'{args.tasks} tasks in one tick: wall / task':<58}"
          f"{wall / args.tasks * 1000:>10.1f}   (agents {agent_time:.2f}s in total, "
          f"{in_review} in review)")
    print()
    print(f"target no-op tick <= 50 ms: "
          f"{'met' if statistics.median(idle) <= 0.05 else 'MISSED'}")
    print(f"target per-task overhead <= 3x worktree add ({3 * wt * 1000:.1f} ms): "
          f"{'met' if overhead <= 3 * wt else 'MISSED'} ({overhead / wt:.1f}x)")
    subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
