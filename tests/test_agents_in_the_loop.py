"""`oxi tick` with the real Claude Code and Codex CLIs against scripted model servers:
the model's tool call writes a file, the engine commits, opens a PR on the local forge,
the critic approves, and it merges."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.testing.agent_clis import claude_binary, codex_binary
from oxi_core.testing.anthropic_server import AnthropicServer
from oxi_core.testing.model_server import Script, Text, ToolCall
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.repos import make_repo
from tests.conftest import roadmap

pytestmark = pytest.mark.real_cli

CHECK = [sys.executable, "-c",
         "import pathlib, sys; sys.exit(pathlib.Path('hello.txt').read_text() != 'hello\\n')"]


def config_for(repo_root: Path, agent: dict[str, object]) -> str:
    return tomli_w.dumps({
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "agents": {"worker": agent},
        "judges": {"critic": {"type": "command", "kwargs": {"commands": [CHECK]}}},
        "forges": {"local": {"type": "local"}},
    })


def run_loop(tmp_path: Path, agent: dict[str, object]) -> tuple[Engine, Path]:
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "say hello",
                                                        "hello.txt says hello"))})
    repo.write("oxi.toml", config_for(repo.root, agent))
    engine = Engine(load_config(repo.config))
    asyncio.run(engine.run_once())
    return engine, repo.origin


def assert_merged(engine: Engine, origin: Path) -> None:
    task = engine.ledger.task("T1-1")
    assert task is not None
    events = [e.type for e in engine.ledger.events(task_id="T1-1")]
    assert task.status == "merged", (task.last_error, events)
    for step in (ev.DISPATCH_RESULT, ev.PR_OPENED, ev.CRITIC_VERDICT, ev.TASK_MERGED):
        assert step in events
    (result,) = engine.ledger.events(types=[ev.DISPATCH_RESULT])
    assert result.payload["classification"] == "SUCCESS"
    assert result.payload["input_tokens"] > 0
    shown = subprocess.run(["git", "show", "main:hello.txt"], cwd=origin, text=True,
                           capture_output=True, check=True)
    assert shown.stdout == "hello\n"


@pytest.mark.skipif(claude_binary() is None, reason="run scripts/install-agent-clis")
def test_tick_with_claude_writes_commits_reviews_and_merges(tmp_path: Path) -> None:
    script = Script([ToolCall.write("hello.txt", "hello\n"), Text("DONE: wrote hello.txt")])
    with AnthropicServer(script) as server:
        engine, origin = run_loop(tmp_path, {"type": "claude", "kwargs": {
            "binary": str(claude_binary()), "base_url": server.base_url, "api_key": "test",
            "model": "claude-sonnet-4-5", "home": str(tmp_path / "home")}})
        assert len(server.turns) == 2
    assert_merged(engine, origin)


@pytest.mark.skipif(codex_binary() is None, reason="run scripts/install-agent-clis")
def test_tick_with_codex_writes_commits_reviews_and_merges(tmp_path: Path) -> None:
    script = Script([ToolCall.write("hello.txt", "hello\n"), Text("DONE: wrote hello.txt")])
    with OpenAIServer(script) as server:
        engine, origin = run_loop(tmp_path, {"type": "codex", "kwargs": {
            "binary": str(codex_binary()), "base_url": server.api_base_url,
            "provider": "scripted", "api_key": "test", "model": "gpt-5.5",
            "codex_home": str(tmp_path / "codex-home"), "home": str(tmp_path / "home")}})
        assert len(server.turns) == 2
    assert_merged(engine, origin)
