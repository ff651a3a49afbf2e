"""`oxi dashboard` on a 1,000,000-event ledger: every JSON endpoint over HTTP against its raw
SQL, in the same run; and `oxi --help` with and without the dashboard command.

    .venv/bin/python benchmarks/bench_dashboard.py [--events 1000000] [--tasks 1000]
        [--repeat 25] [--keep PATH] [--part endpoints|startup|all]

The ledger holds 30 days of events with a realistic mix (agent events, claims, results with
models and final text, critic verdicts, merges, shadow pairs, inference calls), about 1,000
tasks in every status, written through Ledger.append_many. `oxi dashboard` runs as its own
process on it (read-only); each endpoint is fetched ``--repeat`` times over one keep-alive
connection after a warm-up, and its raw SQL (the statements behind it, run bare on a read-only
connection) is timed in the same run. Target: every endpoint <= 50 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_status_queries import STATUS_MIX, StepClock, percentile, task_ids

from oxi_core.ledger import Ledger, NewEvent
from oxi_core.ledger import events as ev
from oxi_core.ledger.driver import connect_read_only
from oxi_core.ledger.migrations import SPEND_MODEL_SQL, SPEND_ROLE_SQL
from oxi_core.models import isoformat
from oxi_core.tasks import Task

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1_000
MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "gpt-5-codex", "exec")
MIX: list[tuple[str, int]] = [
    (ev.AGENT_EVENT, 700), (ev.TASK_DEFERRED, 60), (ev.TICK_STARTED, 25),
    (ev.TICK_FINISHED, 25), (ev.TASK_CLAIMED, 15), (ev.WORKER_STARTED, 15),
    (ev.WORKTREE_CREATED, 15), (ev.DISPATCH_RESULT, 15), (ev.CRITIC_VERDICT, 12),
    (ev.PR_OPENED, 10), (ev.BRANCH_PUSHED, 10), (ev.AUTO_MERGE_ARMED, 6), (ev.TASK_MERGED, 6),
    (ev.RETRY_SCHEDULED, 4), (ev.DISPATCH_ERROR, 2), (ev.AGENTIC_SHADOW_OBSERVED, 10),
    (ev.INFERENCE_CALL, 10),
]


def payload_for(rng: random.Random, etype: str, seq: int) -> tuple[dict[str, Any], float]:
    model = rng.choice(MODELS)
    if etype == ev.DISPATCH_RESULT:
        return {"type": "result", "classification": "SUCCESS", "model": model,
                "agent": model.split("-")[0], "cost_source": "provider", "turns": 12,
                "final_text": "done: " + "x" * rng.randint(200, 3000), "attempt": 1},\
            round(rng.uniform(0.05, 2.5), 4)
    if etype == ev.CRITIC_VERDICT:
        return {"verdict": rng.choice(("APPROVE", "REJECT")), "critic": "critic", "pr": seq,
                "reasons": ["looks fine"]}, round(rng.uniform(0.01, 0.3), 4)
    if etype == ev.INFERENCE_CALL:
        return {"role": rng.choice(("critic", "heartbeat-triage", "auto-improve-judge")),
                "model": rng.choice(("claude-haiku-4-5", "grok-4-fast")),
                "cost_source": "gateway"}, round(rng.uniform(0.001, 0.05), 4)
    if etype == ev.TASK_MERGED:
        return {"pr": seq, "merged_sha": uuid.uuid4().hex}, 0.0
    if etype == ev.TASK_CLAIMED:
        return {"attempt": 1}, 0.0
    if etype == ev.AGENT_EVENT:
        return {"kind": "tool_result", "text": f"ran pytest: {rng.randint(1, 400)} passed"}, 0.0
    return {"seq": seq}, 0.0


def shadow_pair(rng: random.Random, task_id: str) -> list[NewEvent]:
    pair_id, match = uuid.uuid4().hex, rng.random() < 0.7
    primary, shadow = round(rng.uniform(0.1, 2.0), 4), round(rng.uniform(0.05, 1.0), 4)
    common = {"pair_id": pair_id, "shape_match": match,
              "cost_delta_usd": round(shadow - primary, 6)}
    return [NewEvent(ev.AGENTIC_SHADOW_OBSERVED, task_id=task_id, payload={
                **common, "role": role, "agent": agent, "files": ["a.py"],
                "result": {"classification": "SUCCESS", "cost_usd": cost, "model": agent}},
                cost_usd=cost if role == "shadow" else 0.0)
            for role, agent, cost in (("primary", "claude", primary),
                                      ("shadow", "codex", shadow))]


def build(path: Path, events: int, tasks: int, days: int = 30, seed: int = 11) -> float:
    rng = random.Random(seed)
    end = datetime.now(UTC)
    clock = StepClock(end - timedelta(days=days))
    ids = task_ids(tasks)
    types, weights = zip(*MIX, strict=True)
    batches = events // BATCH
    step = timedelta(days=days) / batches
    started = time.perf_counter()
    with Ledger(path, clock=clock) as ledger:
        with ledger.transaction():
            for n, task_id in enumerate(ids):
                status = rng.choices(*zip(*STATUS_MIX, strict=True))[0]
                ledger.insert_task(Task(id=task_id, tier=int(task_id[1]), title=f"item {n}",
                                        status=status, position=n,
                                        attempts=rng.randint(0, 3), pr_number=n,
                                        last_progress_at=isoformat(end),
                                        retry_due_at=isoformat(end + timedelta(hours=1)),
                                        cost_usd=round(rng.uniform(0, 12), 2)),
                                   event_type=ev.TASK_INGESTED, payload={"title": "item"})
        for first in range(0, batches, 50):
            with ledger.transaction():
                for b in range(first, min(first + 50, batches)):
                    batch: list[NewEvent] = []
                    while len(batch) < BATCH:
                        etype = rng.choices(types, weights)[0]
                        task_id = rng.choice(ids)
                        if etype == ev.AGENTIC_SHADOW_OBSERVED:
                            batch += shadow_pair(rng, task_id)
                            continue
                        payload, cost = payload_for(rng, etype, b * BATCH + len(batch))
                        batch.append(NewEvent(etype, task_id=task_id, cost_usd=cost,
                                              payload=payload))
                    ledger.append_many(batch)
                    clock.moment += step
    return time.perf_counter() - started


def raw_queries(today: str, first_day: str) -> dict[str, list[tuple[str, tuple[Any, ...]]]]:
    """The SQL behind each endpoint, bare."""
    role, model = SPEND_ROLE_SQL.format(p="payload"), SPEND_MODEL_SQL.format(p="payload")
    by_time = ("SELECT id, ts, type, task_id, session_id, cost_usd, payload FROM events "
               "WHERE type = ? ORDER BY ts DESC, id DESC LIMIT ?")
    by_id = ("SELECT id, ts, type, task_id, session_id, cost_usd, payload FROM events "
             "WHERE type = ? ORDER BY id DESC LIMIT ?")
    column = "SELECT * FROM tasks WHERE status = ? ORDER BY tier, position, id LIMIT 50"
    return {
        "board": [(column, (status,)) for status in ("planned", "dispatched", "in_review",
                                                      "retrying", "held", "failed", "skipped")]
                 + [(by_time, (ev.TASK_MERGED, 50)),
                    ("SELECT status, count(*) FROM tasks GROUP BY status", ()),
                    ("SELECT coalesce(sum(cost_usd), 0) FROM spend_by_hour WHERE hour >= ?",
                     (today[:13],))],
        "cost": [("SELECT day, type, role, model, cost_usd, events FROM spend_by_day "
                  "WHERE day >= ?", (first_day,))],
        "cost, before m011 (every costed event)": [
            (f"SELECT substr(ts, 1, 10), type, {role}, {model}, sum(cost_usd), count(*) "
             "FROM events WHERE ts >= ? AND cost_usd != 0 GROUP BY 1, 2, 3, 4",
             (first_day,))],
        "throughput": [("SELECT substr(ts, 1, 10), count(*) FROM events WHERE type = ? AND "
                        "ts >= ? GROUP BY 1", (t, first_day))
                       for t in (ev.TASK_MERGED, ev.TASK_CLAIMED)],
        "shadow": [(by_time, (ev.AGENTIC_SHADOW_OBSERVED, 100))],
        "auto-improve": [("SELECT * FROM auto_improve_proposals WHERE status = 'staged'", ())],
        "events": [("SELECT id, ts, type, task_id, session_id, cost_usd, payload FROM events "
                    "ORDER BY id DESC LIMIT 50", ())],
        "events?type=agent_event": [(by_time, (ev.AGENT_EVENT, 50))],
        "events?type=agent_event, ordered by id": [(by_id, (ev.AGENT_EVENT, 50))],
        "shadow, ordered by id": [(by_id, (ev.AGENTIC_SHADOW_OBSERVED, 100))],
        "live.json?after=last": [("PRAGMA data_version", ()),
                                 ("SELECT coalesce(max(id), 0) FROM events", ())],
    }


ENDPOINTS = {
    "board": "/api/board.json", "cost": "/api/cost.json", "throughput": "/api/throughput.json",
    "shadow": "/api/shadow.json", "auto-improve": "/api/auto-improve.json",
    "events": "/api/events.json", "events?type=agent_event":
        f"/api/events.json?type={ev.AGENT_EVENT}",
    "live.json?after=last": "/api/live.json?after={last}", "task (one task's page data)":
        "/api/task/{task}.json", "the whole page (HTML, every panel)": "/",
}


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def serve(repo: Path) -> tuple[subprocess.Popen[str], str, int]:
    env = {k: v for k, v in os.environ.items() if k != "OXI_CONFIG"}
    proc = subprocess.Popen([sys.executable, "-m", "oxi_core", "dashboard", "--port", "0"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    found = re.search(r"http://([\d.]+):(\d+)/", proc.stdout.readline())
    assert found, "oxi dashboard did not start"
    return proc, found.group(1), int(found.group(2))


def bench_endpoints(events: int, tasks: int, repeat: int, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        (repo / ".oxi").mkdir(parents=True)
        (repo / ".git").mkdir()  # a repository root for oxi to find (no config: defaults)
        ledger_path = repo / ".oxi" / "oxi.db"
        if keep is not None and keep.exists():
            shutil.copy(keep, ledger_path)
        else:
            seconds = build(ledger_path, events, tasks)
            print(f"built {events:,} events + {tasks:,} tasks in {seconds:.1f} s, "
                  f"{ledger_path.stat().st_size / 2**20:.0f} MiB")
            if keep is not None:
                shutil.copy(ledger_path, keep)
        conn = connect_read_only(ledger_path)
        last = conn.execute("SELECT max(id) FROM events").fetchone()[0]
        count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        task = conn.execute("SELECT task_id, count(*) FROM events WHERE task_id IS NOT NULL "
                            "GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
        now = datetime.now(UTC)
        today = isoformat(now.replace(hour=0, minute=0, second=0, microsecond=0))
        first_day = isoformat(now - timedelta(days=29))[:10]
        print(f"{count:,} events; the busiest task, {task[0]}, has {task[1]:,}; load average "
              f"{os.getloadavg()[0]:.1f} (2 cores)")

        raw: dict[str, list[float]] = {}
        for name, statements in raw_queries(today, first_day).items():
            raw[name] = timed(lambda s=statements: [conn.execute(q, p).fetchall()
                                                    for q, p in s], repeat)
        conn.close()

        proc, host, port = serve(repo)
        try:
            client = http.client.HTTPConnection(host, port, timeout=60)

            def fetch(path: str) -> None:
                client.request("GET", path)
                answer = client.getresponse()
                body = answer.read()
                assert answer.status == 200, (path, answer.status, body[:200])

            endpoint: dict[str, list[float]] = {}
            for name, path in ENDPOINTS.items():
                url = path.format(last=last, task=task[0])
                endpoint[name] = timed(lambda u=url: fetch(u), repeat)
            client.close()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

        print(f"\n{'endpoint (HTTP, keep-alive)':<44}{'median ms':>10}{'p95 ms':>9}"
              f"{'raw SQL ms':>12}  target <= 50 ms")
        for name in ENDPOINTS:
            med, p95 = statistics.median(endpoint[name]), percentile(endpoint[name], 0.95)
            bare = f"{statistics.median(raw[name]):12.2f}" if name in raw else " " * 12
            verdict = "met" if p95 <= 50 else "MISSED"
            if name.startswith("the whole page"):
                verdict = "(not an endpoint)"
            print(f"  {name:<42}{med:10.2f}{p95:9.2f}{bare}  {verdict}")
        print("\nraw SQL only, for comparison")
        for name in raw:
            if name not in ENDPOINTS:
                print(f"  {name:<42}{statistics.median(raw[name]):10.2f}"
                      f"{percentile(raw[name], 0.95):9.2f}")


def bench_startup(runs: int) -> None:
    """`oxi --help` from this tree and from a copy whose cli.py does not add the dashboard."""
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        shutil.copytree(ROOT / "oxi_core", before / "oxi_core",
                        ignore=shutil.ignore_patterns("__pycache__"))
        cli = before / "oxi_core" / "cli.py"
        lines = cli.read_text().splitlines(keepends=True)
        kept = [line for line in lines if "_dashboard" not in line]
        assert len(kept) == len(lines) - 2, "update this benchmark: cli.py changed"
        cli.write_text("".join(kept))
        code = "from oxi_core.cli import main; main(['--help'])"
        commands = {"oxi --help (after: with the dashboard)": str(ROOT),
                    "oxi --help (before: without it)": str(before)}
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for warmup in (True, *([False] * runs)):
            for name, path in commands.items():
                env = {**os.environ, "PYTHONPATH": path,
                       "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if not warmup:
                    samples[name].append((time.perf_counter() - start) * 1000)
        print(f"\nstartup, {runs} runs each, interleaved (ms)          median    min")
        for name, values in samples.items():
            print(f"  {name:<46} {statistics.median(values):6.1f} {min(values):6.1f}")
        probe = ("import sys; from oxi_core.cli import main\n"
                 "try:\n    main(['--help'])\nexcept SystemExit: pass\n"
                 "print(sorted(m for m in sys.modules if m.startswith('oxi_core.dashboard') "
                 "or m in ('http.server', 'socketserver', 'html')), file=sys.stderr)")
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        print(f"  dashboard modules imported by `oxi --help`: "
              f"{json.loads(result.stderr.strip().splitlines()[-1].replace(chr(39), chr(34)))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the ledger at this path")
    parser.add_argument("--part", choices=("endpoints", "startup", "all"), default="all")
    args = parser.parse_args()
    if args.part in ("endpoints", "all"):
        bench_endpoints(args.events, args.tasks, args.repeat, args.keep)
    if args.part in ("startup", "all"):
        bench_startup(max(args.repeat, 20))


if __name__ == "__main__":
    main()
