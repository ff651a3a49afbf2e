"""Inference: the gateway client's overhead over a raw HTTP round trip, and routing decisions,
each against its baseline measured in the same run.

    .venv/bin/python benchmarks/bench_inference.py [--calls 400] [--tasks 2000]

- one call through ``LiteLLMTarget.complete`` (request body, stream forced off, response
  parsed, cost from the rate card) vs the raw round trip: the same JSON body POSTed with a
  reused ``httpx.AsyncClient`` to the same scripted OpenAI-compatible server on 127.0.0.1,
  the response read with ``.json()``; and, for context, ``complete_for_role`` (routing, budget
  check, one ``inference_call`` ledger write) on top. Rounds alternate so noise hits all alike.
  Target: client <= 1.2x raw (median).
- ``route_for("worker", task)`` per task over varied tasks, with the routing already loaded
  (and, for context, ``load_routing`` included: a stat of each file) and ``route_worker``
  (resolution against oxi.toml's agents). Baseline: a dict lookup per task. Target < 50 us.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from oxi_core.config import load_config
from oxi_core.engine.routes import route_worker
from oxi_core.inference.calls import complete_for_role
from oxi_core.inference.litellm import LiteLLMTarget
from oxi_core.inference.routing import load_routing, route_for
from oxi_core.tasks import Task, TaskStatus
from oxi_core.testing.model_server import Reply, Script, Text, Usage
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.repos import exec_agent_toml

MESSAGES = [{"role": "system", "content": "You triage stuck tasks."},
            {"role": "user", "content": "task T1-5: no heartbeat for 40 minutes; last event "
                                        "tool_result (pytest -q, 97 passed)"}]
MODEL = "claude-haiku-4-5"


def per_call_ms(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, statistics.fmean(samples) * 1000


async def measure_calls(server: OpenAIServer, calls: int, config: Any) -> dict[str, list[float]]:
    import httpx

    url = f"{server.api_base_url}/chat/completions"
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 100,
                       "stream": False})
    raw_client = httpx.AsyncClient(trust_env=False)
    target = LiteLLMTarget(base_url=server.api_base_url, api_key="sk-bench")
    gateway = config.instance("inference", "gateway")
    times: dict[str, list[float]] = {"raw": [], "client": [], "complete_for_role": []}

    async def raw() -> None:
        response = await raw_client.post(url, content=body, headers={
            "content-type": "application/json", "authorization": "Bearer sk-bench"})
        response.json()

    async def client() -> None:
        await target.complete(MESSAGES, MODEL, 100)

    async def role() -> None:
        await complete_for_role(config, config.ledger, "summary", MESSAGES, max_tokens=100)

    for _ in range(20):  # warm both pools and the server
        await raw()
        await client()
        await role()
    for _ in range(calls):
        for name, run in (("raw", raw), ("client", client), ("complete_for_role", role)):
            started = time.perf_counter()
            await run()
            times[name].append(time.perf_counter() - started)
    await raw_client.aclose()
    await target.aclose()
    await gateway.aclose()
    return times


def bench_calls(calls: int) -> None:
    reply = Reply(Text("The worker lost its network."), usage=Usage(800, 40))
    with tempfile.TemporaryDirectory() as folder, OpenAIServer(
        Script([], final=reply)
    ) as server:
        root = Path(folder)
        (root / "roadmap.md").write_text("# roadmap\n")
        (root / "oxi.toml").write_text(
            exec_agent_toml([sys.executable, "-c", "pass"],
                            engine={"budget_per_day_usd": 1e9})
            + f'\n[inference.gateway]\ntype = "litellm"\n'
              f'kwargs = {{ base_url = "{server.api_base_url}", api_key = "sk-bench" }}\n')
        config = load_config(root / "oxi.toml")
        times = asyncio.run(measure_calls(server, calls, config))
    raw_median, raw_mean = per_call_ms(times["raw"])
    print(f"gateway call, {calls} calls each, interleaved (scripted server on 127.0.0.1):")
    print(f"  raw httpx round trip     median {raw_median:7.3f} ms  mean {raw_mean:7.3f} ms")
    for name in ("client", "complete_for_role"):
        median, mean = per_call_ms(times[name])
        print(f"  {name:<24} median {median:7.3f} ms  mean {mean:7.3f} ms  "
              f"{median / raw_median:5.2f}x raw (median)")


def tasks(count: int) -> list[Task]:
    titles = ["doc-lint for README", "Add retries to fetch", "Docs: the runbook",
              "rewrite the reaper", "lint configs", "Document the gateway"]
    return [Task(id=f"T{n % 3 + 1}-{n}", tier=n % 3 + 1, title=titles[n % len(titles)],
                 status=TaskStatus.PLANNED, files_touched=(f"docs/{n}.md",))
            for n in range(count)]


def timed(body: Any, items: list[Task], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            body(item)
        best = min(best, time.perf_counter() - started)
    return best / len(items) * 1e6


def bench_routing(count: int) -> None:
    items = tasks(count)
    routing = load_routing()
    baseline = {item.id: item.tier for item in items}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "roadmap.md").write_text("# roadmap\n")
        (root / "oxi.toml").write_text(
            '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n'
            '[agents.claude]\ntype = "exec"\nkwargs = { argv = ["true"] }\n'
            '[agents.codex]\ntype = "exec"\nkwargs = { argv = ["true"] }\n'
            '[roles]\nworker = "claude"\n')
        config = load_config(root / "oxi.toml")
        figures = {
            "dict lookup (baseline)": timed(lambda t: baseline[t.id], items),
            "route_for, routing loaded": timed(lambda t: routing.route_for("worker", t), items),
            "route_for, load_routing each": timed(lambda t: route_for("worker", t), items),
            "route_worker (dispatch)": timed(lambda t: route_worker(config, t, routing), items),
        }
    print(f"routing decision per task ({count} tasks, best of 5):")
    for name, micros in figures.items():
        print(f"  {name:<30} {micros:8.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    bench_calls(args.calls)
    bench_routing(args.tasks)


if __name__ == "__main__":
    main()
