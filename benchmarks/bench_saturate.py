"""Slot utilisation of `oxi saturate`: N agents that each sleep a fixed time.

    .venv/bin/python benchmarks/bench_saturate.py [--workers 4] [--tasks 16] [--sleep 1.0]
        [--interval 30] [--critic] [--runs 1] [--keep DIR]

Builds a real repository with a bare origin and ``--tasks`` roadmap items that each touch their
own file, configures the built-in ``exec`` agent to run tests/agents/scripted_agent.py (which
sleeps ``--sleep`` seconds and writes one line), and runs ``python -m oxi_core saturate -j N``
as a subprocess, with the probe's readings pinned to a roomy idle host (so N, not this
machine's load, is the limit). When every task has a result and its PR, saturate gets SIGTERM.

From the ledger:
- busy time of a task = worker_started -> dispatch_result (the agent running);
- wall time = first task_claimed -> last dispatch_result;
- slot utilisation = sum(busy) / (N x wall). Target: >= 90%.

A slot is an agent process: it frees when the agent's result is recorded. The gap until the
next agent starts (refill) is split into
  wake    = dispatch_result -> the next task_claimed (saturate noticing the free slot),
  prepare = task_claimed -> worker_started (fetch, worktree, hooks, spawn),
and deliver = dispatch_result -> pr_opened (commit, push, open the PR) runs outside the slot.
Medians are printed. ``--interval`` is saturate's tick interval: with the default (30 s) a
slot freed between ticks is refilled only because saturate wakes for it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oxi_core.ledger import Ledger  # noqa: E402
from oxi_core.ledger import events as ev  # noqa: E402
from oxi_core.models import parse_ts  # noqa: E402
from oxi_core.testing.repos import exec_agent_toml, make_repo  # noqa: E402

AGENT = [sys.executable, str(ROOT / "tests" / "agents" / "scripted_agent.py")]
CRITIC = [[sys.executable, str(ROOT / "tests" / "agents" / "check_answers.py")]]
ROOMY_HOST = json.dumps({"available_ram_bytes": 64 * 2**30, "cpu_count": 64,
                         "load_avg_5min": 0.0})


def roadmap(tasks: int) -> str:
    lines = ["# roadmap", "", "## Tier 1", ""]
    for n in range(1, tasks + 1):
        lines += [f"**T1-{100 + n} · note {n}**", f"_writes `notes/T1-{100 + n}.txt`_", ""]
    return "\n".join(lines)


def run_once(base: Path, args: argparse.Namespace) -> dict[str, float]:
    repo = make_repo(base, {"roadmap.md": roadmap(args.tasks)}, name="repo")
    repo.write("oxi.toml", exec_agent_toml(
        AGENT, critic=CRITIC if args.critic else None,
        engine={"max_concurrent": args.workers},
        agent_env={"AGENT_SLEEP": str(args.sleep)}))
    env = {**os.environ, "OXI_PROBE_READINGS": ROOMY_HOST, "OXI_RAISE_ERRORS": "0"}
    env.pop("PYTEST_CURRENT_TEST", None)
    log = open(base / "saturate.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "oxi_core", "saturate", "-j", str(args.workers),
         "--interval", str(args.interval)],
        cwd=repo.root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True)
    db = repo.root / ".oxi" / "oxi.db"
    deadline = time.monotonic() + 60 + args.tasks * args.sleep * 3
    try:
        while True:
            if db.exists():
                with Ledger(db) as ledger:
                    done = ledger.count_events(ev.PR_OPENED)
                if done >= args.tasks:
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
        return measure(ledger, args.workers)


def measure(ledger: Ledger, workers: int) -> dict[str, float]:
    def times(kind: str) -> dict[str, float]:
        return {e.task_id: parse_ts(e.ts).timestamp() for e in ledger.events(types=[kind])
                if e.task_id}

    claimed, started = times(ev.TASK_CLAIMED), times(ev.WORKER_STARTED)
    results, opened = times(ev.DISPATCH_RESULT), times(ev.PR_OPENED)
    busy = sum(results[t] - started[t] for t in results)
    wall = max(results.values()) - min(claimed.values())
    # A slot is freed when an agent's result is recorded; the next claim (in time) refills it.
    frees = sorted(results.values())
    later_claims = sorted(claimed.values())[workers:]
    later_starts = sorted(started.values())[workers:]
    wakes = [c - f for f, c in zip(frees, later_claims, strict=False)]
    refills = [s - f for f, s in zip(frees, later_starts, strict=False)]
    return {
        "tasks": len(results),
        "wall_s": wall,
        "busy_s": busy,
        "utilisation": busy / (workers * wall),
        "agent_s": statistics.median(results[t] - started[t] for t in results),
        "refill_ms": 1000 * statistics.median(refills),
        "wake_ms": 1000 * statistics.median(wakes),
        "prepare_ms": 1000 * statistics.median(started[t] - claimed[t] for t in started),
        "deliver_ms": 1000 * statistics.median(opened[t] - results[t] for t in opened),
        "ramp_ms": 1000 * (sorted(started.values())[workers - 1] - min(claimed.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--critic", action="store_true",
                        help="review each PR with the command critic (and merge it)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the repositories under DIR and keep them")
    args = parser.parse_args()
    for run in range(args.runs):
        if args.keep:
            base = args.keep / f"run{run}"
            base.mkdir(parents=True)
            figures = run_once(base, args)
        else:
            with tempfile.TemporaryDirectory(prefix="oxi-bench-saturate-") as folder:
                figures = run_once(Path(folder), args)
        print(f"run {run + 1}: N={args.workers} tasks={figures['tasks']:.0f} "
              f"sleep={args.sleep}s interval={args.interval}s critic={args.critic}: "
              f"utilisation {figures['utilisation']:.1%} "
              f"(busy {figures['busy_s']:.2f}s / {args.workers} x wall {figures['wall_s']:.2f}s)"
              f"\n  medians: agent {figures['agent_s']:.3f}s, slot refill "
              f"{figures['refill_ms']:.0f} ms = wake {figures['wake_ms']:.0f} + prepare "
              f"{figures['prepare_ms']:.0f}; deliver (outside the slot) "
              f"{figures['deliver_ms']:.0f} ms; first {args.workers} agents running after "
              f"{figures['ramp_ms']:.0f} ms")

if __name__ == "__main__":
    main()
