"""`oxi saturate -j N` keeping N agents running: the share of wall time all N run, and how long
a slot stays empty between one agent's end and the next agent's start.

    .venv/bin/python benchmarks/bench_saturate.py [--quick] [--python PATH]
        [--items 40] [--sleep 2] [--workers 4] [--critic] [--keep DIR]

A real repository with a bare origin and ``--items`` roadmap items that each touch their own
file; the `exec` agent is a shell script that stamps the time it starts, sleeps ``--sleep``
seconds, writes its file and stamps the time it ends. Those stamps, taken by the agent itself,
say when it runs: its start-up is not counted as running (the ledger's worker_started comes
before it). `oxi saturate -j N` runs as a subprocess with the probe's readings pinned to a roomy
idle host (so N, not this machine's load, is the limit); it is stopped with SIGTERM once every
item has its pull request.

- all N running: the time during which N agents ran at once, over the time from the first claim
  to the first end after the last start (until then there was work for every slot);
- refill gap: each agent's end to the next agent's start (the n-th end after the first N
  starts is paired with the (N+n)-th start); the median.
Goals (issue 14): all N running >= 95% of that time; refill median <= 40 ms. The refill is
also shown against one bare `git worktree add` timed in the same repository afterwards (the
ratio the regression guard compares). With several runs (the quick profile makes three) each
figure is the median over them.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PROFILES,
    Profile,
    Row,
    exec_repo,
    load_average,
    table,
    warm_env,
)

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import parse_ts
from oxi_core.testing.repos import run_git

AGENT = ["sh", "-c",
         'date +%s.%N > "$STAMPS/$OXI_TASK_ID.start"; sleep "$AGENT_SLEEP"; mkdir -p notes; '
         'echo done > "notes/$OXI_TASK_ID.txt"; date +%s.%N > "$STAMPS/$OXI_TASK_ID.end"']
ROOMY_HOST = json.dumps({"available_ram_bytes": 64 * 2**30, "cpu_count": 64,
                         "load_avg_5min": 0.0})
REFILL_GOAL_MS = 40.0


def run_saturate(base: Path, profile: Profile, python: str, critic: bool) -> dict[str, float]:
    stamps = base / "stamps"
    stamps.mkdir(parents=True)
    workers = profile.saturate_workers
    repo = exec_repo(base, profile.saturate_items, agent=AGENT,
                     critic=[["true"]] if critic else None,
                     engine={"max_concurrent": workers},
                     agent_env={"STAMPS": str(stamps),
                                "AGENT_SLEEP": f"{profile.saturate_sleep_s:g}"})
    env = warm_env(base / "pycache", {"OXI_PROBE_READINGS": ROOMY_HOST})
    log = open(base / "saturate.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(python).with_name("oxi")), "saturate", "-j", str(workers), "--interval", "30"],
        cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True)
    db = repo / ".oxi" / "oxi.db"
    deadline = time.monotonic() + 120 + profile.saturate_items * profile.saturate_sleep_s * 3
    try:
        while True:
            if db.exists():
                with Ledger(db) as ledger:
                    if ledger.count_events(ev.PR_OPENED) >= profile.saturate_items:
                        break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"saturate ended or stalled; see {base / 'saturate.log'}")
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()
    with Ledger(db) as ledger:
        claims = [parse_ts(e.ts).timestamp() for e in ledger.events(types=[ev.TASK_CLAIMED])]
    starts = sorted(float((stamps / f"{p.stem}.start").read_text()) for p in
                    stamps.glob("*.start"))
    ends = sorted(float(p.read_text()) for p in stamps.glob("*.end"))
    figures = measure(min(claims), starts, ends, workers)
    adds = []
    for n in range(5):
        path = repo / ".oxi" / "bench-wt" / str(n)
        begin = time.perf_counter()
        run_git(["worktree", "add", "-q", "--detach", str(path), "origin/main"], repo)
        adds.append(time.perf_counter() - begin)
        run_git(["worktree", "remove", "--force", str(path)], repo)
    figures["worktree_add_ms"] = 1000 * statistics.median(adds)
    return figures


def measure(first_claim: float, starts: list[float], ends: list[float],
            workers: int) -> dict[str, float]:
    """The share of [first claim, first end after the last start] during which all
    ``workers`` agents ran, and the refill gaps' median."""
    window_end = min(end for end in ends if end >= starts[-1])
    changes = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends])
    running, last, all_running = 0, first_claim, 0.0
    for moment, step in changes:
        moment = min(max(moment, first_claim), window_end)
        if running == workers:
            all_running += moment - last
        running += step
        last = moment
    refills = [start - end for end, start in zip(ends, starts[workers:], strict=False)]
    return {"all_running": all_running / (window_end - first_claim),
            "window_s": window_end - first_claim,
            "refill_ms": 1000 * statistics.median(refills),
            "ramp_ms": 1000 * (starts[workers - 1] - first_claim)}


def rows(profile: Profile, python: str, *, critic: bool = False,
         keep: Path | None = None) -> list[Row]:
    runs = []
    for n in range(profile.saturate_runs):
        if keep is not None:
            runs.append(run_saturate(keep / f"run{n}", profile, python, critic))
        else:
            with tempfile.TemporaryDirectory(prefix="oxi-bench-saturate-") as folder:
                runs.append(run_saturate(Path(folder), profile, python, critic))
    # Each figure: its median over the runs (the refill paired with its own run's baseline).
    figures = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    figures["refill_ratio"] = statistics.median(run["refill_ms"] / run["worktree_add_ms"]
                                                for run in runs)
    share, refill, add = figures["all_running"], figures["refill_ms"], figures["worktree_add_ms"]
    setting = (f"`oxi saturate -j {profile.saturate_workers}`, {profile.saturate_items} items, "
               f"{profile.saturate_sleep_s:g} s agents{', critic `true`' if critic else ''}"
               + (f" (median of {len(runs)} runs)" if len(runs) > 1 else ""))
    return [
        Row("saturate", f"{setting}: share of the time all {profile.saturate_workers} agents "
            "run", 1 / share, 1 / 0.95, f"{share:.1%}", ">= 95%",
            f"over {figures['window_s']:.1f} s; the first {profile.saturate_workers} all "
            f"running after {figures['ramp_ms']:.0f} ms", "benchmarks/bench_saturate.py"),
        Row("saturate_refill", f"{setting}: refill gap (an agent's end to the next's start), "
            "median, vs one `git worktree add`", figures["refill_ratio"], REFILL_GOAL_MS / add,
            f"{refill:.0f}ms", f"<= {REFILL_GOAL_MS:.0f}ms",
            f"{refill:.0f} ms vs {add:.0f} ms", "benchmarks/bench_saturate.py"),
    ]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI profile")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--sleep", type=float, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--critic", action="store_true", help="review and merge each PR")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs of oxi saturate (figures: medians over them)")
    parser.add_argument("--keep", type=Path, default=None, help="build the runs under DIR/runN")
    args = parser.parse_args()
    profile = PROFILES["quick" if args.quick else "full"]
    profile = replace(profile, saturate_items=args.items or profile.saturate_items,
                      saturate_sleep_s=args.sleep or profile.saturate_sleep_s,
                      saturate_workers=args.workers or profile.saturate_workers)
    print(f"load average before: {load_average()}")
    profile = replace(profile, saturate_runs=args.runs or profile.saturate_runs)
    print(table(rows(profile, args.python, critic=args.critic, keep=args.keep)))
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
