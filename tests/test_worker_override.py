"""`oxi tick --worker NAME` and `oxi saturate --worker NAME` choose the worker for one run;
`--real-claude` is the seed's spelling of `--worker claude` (its acceptance: `oxi v3 tick
--real-claude` from a fresh shell, no launcher script), with clear errors when no claude agent
is configured or its binary is missing."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import tomli_w

from oxi_core.ledger import events as ev
from oxi_core.testing.agent_clis import claude_binary
from oxi_core.testing.anthropic_server import AnthropicServer
from oxi_core.testing.model_server import Script, Text, ToolCall
from oxi_core.testing.repos import make_repo
from tests.conftest import roadmap
from tests.unattended.support import (
    OxiProcess,
    events_of,
    ledger_of,
    run_oxi,
    running,
    wait_for,
)

WRITE_AS = [sys.executable, "-c", "import os, pathlib; pathlib.Path('by.txt').write_text("
            "os.environ['WHO'] + '\\n')"]


def two_agents(tmp_path: Path, extra: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "say who", "by.txt"))})
    agents: dict[str, object] = {
        "main": {"type": "exec", "kwargs": {"argv": WRITE_AS, "env": {"WHO": "main"}}},
        "other": {"type": "exec", "kwargs": {"argv": WRITE_AS, "env": {"WHO": "other"}}},
        **(extra or {}),
    }
    repo.write("oxi.toml", tomli_w.dumps({
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "agents": agents, "forges": {"local": {"type": "local"}},
        "roles": {"worker": "main"}}))
    return repo


def test_tick_worker_runs_every_task_of_the_run_with_that_agent(tmp_path: Path) -> None:
    repo = two_agents(tmp_path)

    result = run_oxi(["tick", "--worker", "other"], cwd=repo.root)

    assert result.returncode == 0, result.stderr
    assert repo.origin_file("by.txt", ref="oxi/T1-1-say-who") == "other\n"
    with ledger_of(repo) as ledger:
        task = ledger.task("T1-1")
        assert task is not None and task.agent == "other"


def test_saturate_worker_holds_for_the_whole_run(tmp_path: Path) -> None:
    repo = two_agents(tmp_path)

    with running(OxiProcess(["saturate", "-j", "1", "--interval", "0.2", "--worker", "other"],
                            repo.root, log_dir=tmp_path / "logs")) as daemon:
        wait_for(lambda: events_of(repo, ev.PR_OPENED), what="the pull request")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.stderr
    assert repo.origin_file("by.txt", ref="oxi/T1-1-say-who") == "other\n"


def test_a_worker_that_is_not_configured_is_a_clear_error(tmp_path: Path) -> None:
    repo = two_agents(tmp_path)

    unknown = run_oxi(["tick", "--worker", "ohter"], cwd=repo.root)
    no_claude = run_oxi(["v3", "tick", "--real-claude"], cwd=repo.root)

    assert unknown.returncode == 2
    assert unknown.stderr == (
        f"oxi: error: {repo.config}: [agents]: --worker ohter: no ohter agent is configured; "
        "configured agents: main, other (did you mean `other`?) (add [agents.ohter] type = "
        "\"ohter\" to oxi.toml)\n")
    assert no_claude.returncode == 2
    assert no_claude.stderr == (
        f"oxi: error: {repo.config}: [agents]: --real-claude: no claude agent is configured; "
        "configured agents: main, other (add [agents.claude] type = \"claude\" to oxi.toml "
        "(pip install oxi-claude))\n")
    assert not events_of(repo, ev.TASK_CLAIMED)


def test_real_claude_with_its_binary_missing_says_not_found(tmp_path: Path) -> None:
    repo = two_agents(tmp_path, {"sonnet": {"type": "claude", "kwargs": {
        "binary": "/nonexistent/claude"}}})

    result = run_oxi(["tick", "--real-claude"], cwd=repo.root)

    assert result.returncode == 2
    assert result.stderr.startswith(
        f"oxi: error: {repo.config}:")
    assert ("[agents.sonnet]: key 'kwargs.binary': --real-claude: /nonexistent/claude not "
            "found (install it, or set kwargs.binary to its path)") in result.stderr
    assert not events_of(repo, ev.TASK_CLAIMED)


@pytest.mark.real_cli
@pytest.mark.skipif(claude_binary() is None, reason="run scripts/install-agent-clis")
def test_v3_tick_real_claude_from_a_fresh_shell_merges(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "say hello",
                                                        "hello.txt says hello"))})
    script = Script([ToolCall.write("hello.txt", "hello\n"), Text("DONE: wrote hello.txt")])
    with AnthropicServer(script) as server:
        repo.write("oxi.toml", tomli_w.dumps({
            "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
            "agents": {
                "script": {"type": "exec", "kwargs": {"argv": ["false"]}},
                "claude": {"type": "claude", "kwargs": {
                    "binary": str(claude_binary()), "base_url": server.base_url,
                    "api_key": "test", "model": "claude-sonnet-4-5",
                    "home": str(tmp_path / "home")}}},
            "forges": {"local": {"type": "local"}},
            "roles": {"worker": "script"}}))

        result = run_oxi(["v3", "tick", "--real-claude"], cwd=repo.root,
                         env={"OXI_RAISE_ERRORS": "0"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("oxi tick: dispatched T1-1"), result.stdout
    assert repo.origin_file("hello.txt", ref="oxi/T1-1-say-hello") == "hello\n"
    with ledger_of(repo) as ledger:
        task = ledger.task("T1-1")
        assert task is not None and task.agent == "claude"
