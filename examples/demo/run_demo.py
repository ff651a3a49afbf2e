"""oxi end to end on a demo repository, offline, with the embedded defaults.

`./dev demo` runs this. It builds a small git repository with a bare `origin` under
examples/demo/run/, gives it a two-item roadmap, and runs `oxi tick` until the work is done:
the `exec` agent (examples/demo/agent.py) implements each item, the `local` forge turns its
branch into a pull request, the `command` critic runs the repository's tests, and approved
pull requests are squash-merged into origin's main. One item merges at once; the other is
rejected by the critic, and its second attempt, prompted with the critic's findings, merges.

The summary comes from the ledger and from origin's main, never from what the agent claimed;
the script exits non-zero when an expected merge did not reach origin's main.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = {"T1-1": "def add(", "T1-2": "def multiply("}
MAX_TICKS = 6


def run(argv: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, check=True, text=True, capture_output=True,
                          **kwargs)  # type: ignore[call-overload,no-any-return]


def git(args: list[str], cwd: Path) -> str:
    return run(["git", *args], cwd).stdout.strip()


def build_workspace(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    origin = root / "origin.git"
    repo = root / "calc"
    run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin)], root)
    run(["git", "clone", "--quiet", str(origin), str(repo)], root)
    shutil.copytree(HERE / "template", repo, dirs_exist_ok=True)
    config = f"""\
# The demo's oxi.toml: built-in plugins only, no API key, no network.
[adapter]
class = "oxi_adapter_self.SelfAdapter"
kwargs = {{ repo_root = "." }}

[engine]
max_concurrent = 2
retry_base_s = 0.5

[agents.demo]
type = "exec"

[agents.demo.kwargs]
argv = [{json.dumps(sys.executable)}, {json.dumps(str(HERE / "agent.py"))}]
timeout_s = 60

[judges.tests]
type = "command"

[judges.tests.kwargs]
commands = [[{json.dumps(sys.executable)}, "-m", "unittest", "discover", "-s", "tests", "-q"]]
timeout_s = 60

[forges.local]
type = "local"
"""
    (repo / "oxi.toml").write_text(config)
    env = {"GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@localhost",
           "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@localhost"}
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "--quiet", "-m", "calc: an empty calculator and its roadmap"], repo,
        env={**os.environ, **env})
    run(["git", "push", "--quiet", "origin", "main"], repo)
    return repo


def oxi(args: list[str], repo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OXI_RAISE_ERRORS": "0"}
    return subprocess.run([sys.executable, "-m", "oxi_core", *args], cwd=repo, text=True,
                          capture_output=True, env=env, check=False)


def main() -> int:
    started = time.monotonic()
    workspace = Path(os.environ.get("OXI_DEMO_DIR", HERE / "run"))
    repo = build_workspace(workspace)
    print(f"demo repository: {repo} (origin: {workspace / 'origin.git'})")
    for number in range(1, MAX_TICKS + 1):
        result = oxi(["tick"], repo)
        print(f"--- tick {number}\n{result.stdout.rstrip()}")
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        status = json.loads(oxi(["status", "--json"], repo).stdout)
        if all(t["status"] in ("merged", "failed", "done", "abandoned") for t in status["tasks"]):
            break
    return summarise(repo, workspace, time.monotonic() - started)


def summarise(repo: Path, workspace: Path, elapsed: float) -> int:
    status = json.loads(oxi(["status", "--json", "-n", "0"], repo).stdout)
    git(["fetch", "--quiet", "origin"], repo)
    main_calc = git(["show", "origin/main:calc.py"], repo)
    main_log = git(["log", "--format=%s", "origin/main"], repo)
    events = json.loads(oxi(["ledger", "tail", "-n", "500", "--json"], repo).stdout)["events"]
    print("\n=== summary (from the ledger and origin/main) ===")
    ok = True
    for task in status["tasks"]:
        verdicts = [e["payload"]["verdict"] for e in events
                    if e["type"] == "critic_verdict" and e["task_id"] == task["id"]]
        landed = EXPECTED[task["id"]] in main_calc and task["id"] in main_log
        ok &= task["status"] == "merged" and landed
        print(f"{task['id']} {task['title']!r}: {task['status']} after {task['attempts']} "
              f"attempt(s); critic {' then '.join(verdicts) or 'never ran'}; "
              f"{'on' if landed else 'NOT on'} origin/main")
    leftovers = [line for line in git(["worktree", "list", "--porcelain"], repo).splitlines()
                 if line.startswith("worktree ") and Path(line[9:]) != repo]
    if leftovers:
        ok = False
        print(f"worktrees left behind: {leftovers}")
    print(f"origin/main: {main_log.splitlines()[0]} (+{len(main_log.splitlines()) - 1} more)")
    print(f"ledger: {repo / '.oxi' / 'oxi.db'} ({len(events)} events), "
          f"cost ${status['cost_total_usd']:.4f}, {elapsed:.1f}s")
    if not ok:
        print("DEMO FAILED: an expected merge did not reach origin/main", file=sys.stderr)
        return 1
    print("demo ok: both items merged; one needed a second attempt after the critic's review")
    return 0


if __name__ == "__main__":
    sys.exit(main())
