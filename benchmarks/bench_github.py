"""The github forge's cost against the loopback GitHub, beside the local forge in the same run.

1. A delivered task: one `Engine.run_once()` that dispatches one task (an agent that writes one
   file), pushes it over HTTP, opens the pull request, has a command critic approve it, arms
   auto-merge (its required check already passed, so GitHub says "clean status" and the forge
   merges it directly, guarded by its head) and observes the merge. Baseline: the same tick
   with the local forge and a bare origin on disk.
2. An idle tick with N open pull requests (default 50): wall time, HTTP requests, and requests
   that counted against the rate limit, from a new engine each time (what `oxi tick` is).
   Baseline: an idle tick with the local forge.

    .venv/bin/python benchmarks/bench_github.py [--runs 6] [--open-prs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oxi_github.testing import LoopbackGitHub  # noqa: E402

from oxi_core.config import load_config  # noqa: E402
from oxi_core.engine.engine import Engine  # noqa: E402
from oxi_core.testing.repos import make_repo  # noqa: E402

AGENT = [sys.executable, "-c",
         "import os, pathlib; pathlib.Path(os.environ['OXI_TASK_ID'] + '.txt').write_text('x')"]
CRITIC = [[sys.executable, "-c", "pass"]]
TOKEN_ENV = "OXI_BENCH_GITHUB_TOKEN"


def roadmap(count: int) -> str:
    lines = ["# bench", ""]
    for n in range(1, count + 1):
        lines += [f"**T2-{n} · item number {n}**", "_one file_", ""]
    return "\n".join(lines)


def config(forge: dict[str, object]) -> str:
    return tomli_w.dumps({
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "engine": {"max_concurrent": 1},
        "agents": {"worker": {"type": "exec", "kwargs": {"argv": AGENT, "timeout_s": 60}}},
        "judges": {"critic": {"type": "command", "kwargs": {"commands": CRITIC}}},
        "forges": forge,
    })


def tick(engine: Engine) -> float:
    start = time.perf_counter()
    asyncio.run(engine.run_once())
    return time.perf_counter() - start


def github_repo(base: Path, items: int) -> tuple[LoopbackGitHub, Path]:
    hub = LoopbackGitHub(base / "hub").start()
    hub.seed({".gitignore": ".oxi/\noxi.toml\n", "roadmap.md": roadmap(items)})
    root = hub.clone(base / "clone")
    os.environ[TOKEN_ENV] = hub.token
    (root / "oxi.toml").write_text(config({"github": {"type": "github", "kwargs": {
        "api_url": hub.api_url, "token": {"env": TOKEN_ENV}}}}))
    return hub, root


def local_repo(base: Path, items: int) -> Path:
    repo = make_repo(base, {"roadmap.md": roadmap(items)}, name="local")
    repo.write("oxi.toml", config({"local": {"type": "local"}}))
    return repo.root


def delivered(runs: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        hub, github_root = github_repo(Path(scratch) / "g", runs)
        local_root = local_repo(Path(scratch), runs)
        github_engine = Engine(load_config(github_root / "oxi.toml"))
        local_engine = Engine(load_config(local_root / "oxi.toml"))
        github_times, local_times, requests, counted = [], [], [], []
        for _ in range(runs):  # interleaved, so load hits both alike
            local_times.append(tick(local_engine))
            since = len(hub.requests)
            github_times.append(tick(github_engine))
            made = [r for r in hub.requests[since:] if r.resource != "git"]
            requests.append(len(made))
            counted.append(sum(r.counted for r in made))
        merged = sum(1 for t in github_engine.ledger.tasks() if t.status == "merged")
        hub.stop()
    print(f"delivered task, {runs} runs ({merged} merged on the loopback GitHub):")
    print(f"  local forge (baseline)  median {statistics.median(local_times) * 1000:7.0f} ms")
    print(f"  github forge            median {statistics.median(github_times) * 1000:7.0f} ms"
          f"  ({statistics.median(requests):.0f} API requests, "
          f"{statistics.median(counted):.0f} counted)")


def idle(runs: int, open_prs: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        hub, root = github_repo(Path(scratch) / "g", 0)  # nothing to dispatch
        forge = load_config(root / "oxi.toml").forge
        for n in range(open_prs):
            branch = f"oxi/T9-{n}-open"
            hub.push(branch, {f"open/{n}.txt": f"{n}\n"}, f"T9-{n}: open")
            forge.open_pr(task_id=f"T9-{n}", branch=branch, title=f"T9-{n}: open", body="")
        local_root = local_repo(Path(scratch), 0)
        Engine(load_config(root / "oxi.toml")).observe_now()  # a first look fills the cache
        github_times, local_times, requests, counted = [], [], [], []
        for _ in range(runs):
            local_times.append(tick(Engine(load_config(local_root / "oxi.toml"))))
            since = len(hub.requests)
            github_times.append(tick(Engine(load_config(root / "oxi.toml"))))
            made = [r for r in hub.requests[since:] if r.resource != "git"]
            requests.append(len(made))
            counted.append(sum(r.counted for r in made))
            if os.environ.get("BENCH_SHOW"):
                print([(r.method, r.path[:70], r.status) for r in made if r.counted])
        hub.stop()
    print(f"idle tick, a new engine each time, {open_prs} open pull requests on GitHub:")
    print(f"  local forge (baseline)  median {statistics.median(local_times) * 1000:7.0f} ms")
    print(f"  github forge            median {statistics.median(github_times) * 1000:7.0f} ms"
          f"  ({max(requests)} API requests at most, {max(counted)} counted at most)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--open-prs", type=int, default=50)
    args = parser.parse_args()
    delivered(args.runs)
    idle(args.runs, args.open_prs)


if __name__ == "__main__":
    main()
