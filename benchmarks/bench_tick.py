"""Tick overhead: a no-op tick, and the engine's own time per dispatched task.

Setting: a 1,000-item roadmap and a 100,000-event ledger. The baseline, measured in the same
run, is one bare `git worktree add` (and its removal) in the same repository.

    .venv/bin/python benchmarks/bench_tick.py [--tasks 20] [--events 100000] [--items 1000]

Targets: a tick with nothing to do <= 50 ms; per-task overhead with a no-op agent (wall time of
a tick that dispatches one task to an agent that exits at once, minus the agent's own run time)
<= 3x one `git worktree add`.

Also measured, with no target: the same for an agent that writes one file, so that the task is
committed, pushed and opened as a pull request, beside the bare git commands such a task needs
(worktree add -b, add, commit, push, worktree remove) timed in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
NO_OP_AGENT = [sys.executable, "-c", "pass"]
SERIAL_RUNS = 15


def roadmap(count: int) -> str:
    lines = ["# bench", ""]
    for n in range(1, count + 1):
        lines += [f"**T2-{n} · item number {n}**", f"_touches `files/f{n}.txt`_", ""]
    return "\n".join(lines)


_names = itertools.count()


def worktree_add_baseline(repo: Path, runs: int, *, detach: bool) -> list[float]:
    """One bare `git worktree add <path>`, which (with no other argument) checks out a new
    branch named after the folder, as a dispatch does; or the lighter `--detach` form, which
    creates no branch. Each worktree is removed (untimed) before the next."""
    times = []
    for _ in range(runs):
        # A new folder name each time: the branch a bare add creates is named after it.
        path = repo / ".oxi" / "bench-wt" / f"{'d' if detach else 'b'}{next(_names)}"
        argv = ["worktree", "add", "-q", *(["--detach"] if detach else []), str(path)]
        start = time.perf_counter()
        run_git(argv, repo)
        times.append(time.perf_counter() - start)
        run_git(["worktree", "remove", "--force", str(path)], repo)
    return times


def delivery_floor(repo: Path, runs: int) -> list[float]:
    """The git commands a delivered task cannot do without, run bare: worktree add -b, add,
    commit, push, worktree remove."""
    times = []
    for n in range(runs):
        path = repo / ".oxi" / "bench-wt" / f"floor-{n}"
        branch = f"bench/floor-{n}"
        start = time.perf_counter()
        run_git(["worktree", "add", "-q", "--no-track", "-b", branch, str(path), "origin/main"],
                repo)
        (path / "floor.txt").write_text(str(n))
        run_git(["add", "-A"], path)
        run_git(["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "floor"],
                path)
        run_git(["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], path)
        run_git(["worktree", "remove", str(path)], repo)
        times.append(time.perf_counter() - start)
    return times


def serial_overhead(repo: Path, agent: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Engine time per task: one task per tick, tick wall time minus the agent's run time.

    Each task is paired with a bare `git worktree add` timed just before it, so the two see the
    same machine: these machines' speed drifts by a third within a minute. Returns both lists.
    """
    repo.joinpath("oxi.toml").write_text(exec_agent_toml(agent, engine={
        "max_concurrent": 1, "auto_merge": False}))
    serial = Engine(load_config(repo / "oxi.toml"), capacity=lambda: 1)
    asyncio.run(serial.run_once())  # a first tick sweeps worktrees and fetches; not counted
    times: list[float] = []
    adds: list[float] = []
    for _ in range(runs):
        adds += worktree_add_baseline(repo, 1, detach=False)
        start = time.perf_counter()
        one = asyncio.run(serial.run_once())
        wall = time.perf_counter() - start
        assert len(one.dispatched) == 1
        result = serial.ledger.events(types=[ev.DISPATCH_RESULT], newest_first=True, limit=1)
        times.append(wall - result[0].payload["duration_s"])
    serial.ledger.close()
    return times, adds


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
        cold._ingested, cold._roadmap_cache = None, None
        asyncio.run(cold.tick())
        fresh.append(time.perf_counter() - start)
    with engine.ledger.transaction() as conn:
        conn.execute("UPDATE tasks SET status = 'planned'")
    baseline = worktree_add_baseline(repo.root, 15, detach=False)
    detached = worktree_add_baseline(repo.root, 15, detach=True)
    floor = delivery_floor(repo.root, SERIAL_RUNS)

    # Dispatch N tasks in one tick with an agent that writes one file and exits.
    busy = Engine(load_config(repo.config), capacity=lambda: args.tasks)
    start = time.perf_counter()
    report = asyncio.run(busy.run_once())
    wall = time.perf_counter() - start
    assert len(report.dispatched) == args.tasks, report.dispatched
    results = busy.ledger.events(types=[ev.DISPATCH_RESULT])
    agent_time = sum(e.payload["duration_s"] for e in results)
    in_review = len(busy.ledger.tasks([TaskStatus.IN_REVIEW]))
    busy.ledger.close()
    no_op, paired = serial_overhead(repo.root, NO_OP_AGENT, SERIAL_RUNS)
    delivered, _ = serial_overhead(repo.root, AGENT, SERIAL_RUNS)
    failed = engine.ledger.query("SELECT count(*) FROM tasks WHERE status = 'failed'")[0][0]
    assert failed == SERIAL_RUNS + 1, failed  # each no-op task: FAILED, "no changes"
    wt = statistics.median(baseline)
    overhead = statistics.median(no_op)
    # The target's ratio: each task against the worktree add timed just before it.
    paired_ratio = statistics.median(t / a for t, a in zip(no_op, paired, strict=True))

    def row(label: str, times: list[float]) -> str:
        return (f"{label:<62}{statistics.median(times) * 1000:>10.1f}"
                f"{sorted(times)[max(0, int(len(times) * 0.95) - 1)] * 1000:>9.1f}"
                f"{statistics.median(times) / wt:>8.1f}x")

    print()
    print(f"{'measure':<62}{'median ms':>10}{'p95 ms':>9}{'/ add':>9}")
    print(row("no-op tick (nothing to do)", idle))
    print(row("no-op tick, roadmap parsed and diffed anew", fresh))
    print(row("baseline: one bare git worktree add <path> (a new branch)", baseline))
    print(row("  the same with --detach (no branch)", detached))
    print(row("engine time per task, no-op agent (minus agent)", no_op))
    print(row("engine time per task, one-file agent: commit, push, PR", delivered))
    print(row("  its git floor: worktree add -b, add, commit, push, remove", floor))
    print(f"{f'{args.tasks} tasks in one tick, one-file agent: wall / task':<62}"
          f"{wall / args.tasks * 1000:>10.1f}   (agents {agent_time:.2f}s in total, "
          f"{in_review} in review)")
    print()
    print(f"target no-op tick <= 50 ms: "
          f"{'met' if statistics.median(idle) <= 0.05 else 'MISSED'}")
    print(row("  worktree add <path> timed just before each of those tasks", paired))
    print(f"target per-task overhead <= 3x worktree add: "
          f"{'met' if paired_ratio <= 3 else 'MISSED'} (median of paired ratios "
          f"{paired_ratio:.2f}x; {overhead / wt:.1f}x the baseline above; "
          f"{overhead / statistics.median(detached):.1f}x the --detach form)")
    print(f"delivered task: engine adds "
          f"{(statistics.median(delivered) - statistics.median(floor)) * 1000:.1f} ms "
          f"over its git floor")
    subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
