"""One delivered task, start to merge, against the same git work done by hand.

    .venv/bin/python benchmarks/bench_task.py [--quick] [--tasks 15]

Each task is what one `oxi tick` does for it: a new engine (its config loaded anew, the git
identity looked up anew) dispatches it to an `exec` agent that writes one file, commits and
pushes it, opens its pull request on the local forge, runs the critic (`true`), and merges it.
Engine time = the tick's wall time minus the agent's own run (dispatch_result's duration).
The baseline, timed next to each task (the order alternating), is the same git work by hand:
`fetch`, `worktree add -b`, `add`, `commit`, `push`, the squash merge on the bare origin
(`merge-tree --write-tree`, `commit-tree`, one `update-ref --stdin` moving main and deleting
the branch) and `worktree remove`. Git processes are counted on one more task (through a PATH
shim, untimed). Goals (issue 14): <= 2x the work by hand; <= 8 git processes.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PROFILES, Profile, Row, counting_git, exec_repo, load_average, paired, table

from oxi_core import git
from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.testing.repos import run_git

AGENT = [sys.executable, "-c",
         "import os, pathlib; pathlib.Path(os.environ['OXI_TASK_ID'] + '.txt').write_text('x')"]
GIT_GOAL = 8


def engine_task(repo: Path) -> float:
    """One tick delivering and merging one task, as a new `oxi tick` process would run it;
    the seconds it took minus the agent's own run."""
    git._config_cache.clear()  # a new process reads the repository's configuration again
    engine = Engine(load_config(repo / "oxi.toml"), capacity=lambda: 1)
    try:
        start = time.perf_counter()
        report = asyncio.run(engine.run_once())
        wall = time.perf_counter() - start
        assert len(report.dispatched) == 1, report
        assert report.merged == report.dispatched, report
        result = engine.ledger.events(types=[ev.DISPATCH_RESULT], newest_first=True, limit=1)
        return wall - float(result[0].payload["duration_s"])
    finally:
        engine.ledger.close()


_by_hand = iter(range(1_000_000))


def by_hand(repo: Path, origin: Path) -> float:
    """The same git work, typed by a person who knows git well."""
    n = next(_by_hand)
    branch, path = f"hand/{n}", repo / ".oxi" / "hand" / str(n)
    start = time.perf_counter()
    run_git(["fetch", "-q", "origin"], repo)
    run_git(["worktree", "add", "-q", "--no-track", "-b", branch, str(path), "origin/main"], repo)
    (path / f"hand-{n}.txt").write_text("x")
    run_git(["add", "-A"], path)
    run_git(["commit", "-q", "-m", f"hand {n}"], path)
    run_git(["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], path)
    tree = run_git(["merge-tree", "--write-tree", "refs/heads/main", f"refs/heads/{branch}"],
                   origin).splitlines()[0]
    commit = run_git(["commit-tree", tree, "-p", "refs/heads/main", "-m", f"hand {n}"], origin)
    _update_refs(origin, f"update refs/heads/main {commit} {commit}^\n"
                         f"delete refs/heads/{branch}\n")
    run_git(["worktree", "remove", str(path)], repo)
    return time.perf_counter() - start


def _update_refs(origin: Path, commands: str) -> None:
    import subprocess

    subprocess.run(["git", "update-ref", "--stdin"], cwd=origin, input=commands, text=True,
                   check=True, capture_output=True)


def _command(line: str) -> str:
    """A logged git command line as a name: its subcommand (after git's own options such as
    `-c key=value`), with the next word for `worktree`."""
    words = iter(line.split())
    for word in words:
        if word == "-c":
            next(words, None)
        elif not word.startswith("-"):
            return f"{word} {next(words, '')}" if word == "worktree" else word
    return line[:40]


def rows(profile: Profile, python: str) -> list[Row]:
    del python  # measured in this process: engine time, not start-up (bench_tick has that)
    with tempfile.TemporaryDirectory(prefix="oxi-bench-task-") as folder:
        base = Path(folder)
        repo = exec_repo(base, profile.tasks + 3, agent=AGENT, critic=[["true"]],
                         engine={"max_concurrent": 1})
        origin = base / "repo.git"
        engine_task(repo)  # a first tick: the ledger, the first fetch (not counted)
        pairs = paired(lambda: engine_task(repo), lambda: by_hand(repo, origin), profile.tasks,
                       warmup=0)
        with counting_git(base) as taken:
            # The shim is another git binary, so this tick reads the configuration anew, as
            # the first tick after git changed does; the next one is every other tick's count.
            engine_task(repo)
            taken()
            engine_task(repo)
            engine_lines = taken()
            by_hand(repo, origin)
            hand_lines = taken()
    return [
        Row("task", "one delivered task (dispatch, commit, push, PR, critic `true`, merge): "
            "engine time excluding the agent, vs the same git work by hand", pairs.ratio, 2.0,
            f"{pairs.ratio:.2f}x", "<= 2x",
            f"{pairs.median_a() * 1000:.0f} ms vs {pairs.median_b() * 1000:.0f} ms",
            "benchmarks/bench_task.py"),
        Row("task_git", "git processes per delivered task (by hand: "
            f"{len(hand_lines)})", len(engine_lines) / GIT_GOAL, 1.0, str(len(engine_lines)),
            f"<= {GIT_GOAL}",
            "; ".join(_command(line) for line in engine_lines),
            "benchmarks/bench_task.py"),
    ]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", type=int, default=None)
    args = parser.parse_args()
    chosen = PROFILES["quick" if args.quick else "full"]
    if args.tasks:
        from dataclasses import replace

        chosen = replace(chosen, tasks=args.tasks)
    print(f"load average before: {load_average()}")
    print(table(rows(chosen, sys.executable)))
    print(f"load average after: {load_average()}")
