"""T2-40 end to end: routing.yaml sends a tier-2 doc task to Codex (the real codex CLI against
the scripted OpenAI server) while other tasks go to [roles] worker (the real claude CLI), and a
provider failure of the first choice falls back along the chain, recorded as an event."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from oxi_core.cli import cli
from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.testing.agent_clis import claude_binary, codex_binary
from oxi_core.testing.anthropic_server import AnthropicServer
from oxi_core.testing.model_server import ErrorReply, Script, Text, ToolCall
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.repos import make_repo
from oxi_core.timeline import task_timeline
from tests.conftest import roadmap

pytestmark = [
    pytest.mark.real_cli, pytest.mark.slow,
    pytest.mark.skipif(claude_binary() is None or codex_binary() is None,
                       reason="run scripts/install-agent-clis"),
]

# The critic: every file a task must write exists with its content.
CHECK = [sys.executable, "-c",
         "import pathlib, sys; sys.exit(not all(pathlib.Path(f).exists() for f in sys.argv[1:]))"]


def configure(tmp_path: Path, anthropic: AnthropicServer, openai: OpenAIServer,
              items: list[tuple[str, str, str]], files: list[str]) -> Engine:
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(*items)})
    repo.write("oxi.toml", tomli_w.dumps({
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "engine": {"max_concurrent": 2},
        "agents": {
            "claude": {"type": "claude", "kwargs": {
                "binary": str(claude_binary()), "base_url": anthropic.base_url,
                "api_key": "test", "model": "claude-sonnet-4-5",
                "home": str(tmp_path / "claude-home")}},
            "codex": {"type": "codex", "kwargs": {
                "binary": str(codex_binary()), "base_url": openai.api_base_url,
                "provider": "scripted", "api_key": "test", "model": "gpt-5.5",
                "codex_home": str(tmp_path / "codex-home"), "home": str(tmp_path / "home")}},
        },
        "judges": {"critic": {"type": "command",
                              "kwargs": {"commands": [[*CHECK, *files]]}}},
        "forges": {"local": {"type": "local"}},
        "roles": {"worker": "claude", "critic": "critic"},
    }))
    return Engine(load_config(repo.config))


def origin_file(engine: Engine, name: str) -> str:
    origin = engine.config.paths.repo_root.parent / f"{engine.config.paths.repo_root.name}.git"
    return subprocess.run(["git", "show", f"main:{name}"], cwd=origin, text=True,
                          capture_output=True, check=True).stdout


def test_a_tier_2_doc_task_runs_on_codex_and_the_others_on_the_worker(tmp_path: Path) -> None:
    items = [("T2-16", "doc-lint for the docs folder", "write docs.txt"),
             ("T1-1", "say hello", "write hello.txt")]
    codex_script = Script([ToolCall.write("docs.txt", "linted\n"), Text("DONE")])
    claude_script = Script([ToolCall.write("hello.txt", "hello\n"), Text("DONE")])
    with OpenAIServer(codex_script) as openai, AnthropicServer(claude_script) as anthropic:
        engine = configure(tmp_path, anthropic, openai, items, [])
        asyncio.run(engine.run_once())
        assert len(openai.turns) == 2 and len(anthropic.turns) == 2
    doc = engine.ledger.task("T2-16")
    hello = engine.ledger.task("T1-1")
    assert doc is not None and hello is not None
    assert (doc.status, doc.agent, doc.model) == ("merged", "codex", "gpt-5.5"), doc.last_error
    assert (hello.status, hello.agent, hello.model) == ("merged", "claude", "claude-sonnet-4-5")
    [claim] = engine.ledger.events(types=[ev.TASK_CLAIMED], task_id="T2-16")
    assert claim.payload["route"] == "doc-tier-2-to-codex"
    [result] = engine.ledger.events(types=[ev.DISPATCH_RESULT], task_id="T2-16")
    assert result.payload["agent"] == "codex"
    assert origin_file(engine, "docs.txt") == "linted\n"


def test_codex_failing_for_its_provider_falls_back_to_claude(tmp_path: Path) -> None:
    items = [("T2-16", "doc-lint for the docs folder", "write docs.txt")]
    failing = Script([ErrorReply.server_error("upstream exploded")])
    claude_script = Script([ToolCall.write("docs.txt", "linted\n"), Text("DONE")])
    with OpenAIServer(failing) as openai, AnthropicServer(claude_script) as anthropic:
        engine = configure(tmp_path, anthropic, openai, items, ["docs.txt"])
        asyncio.run(engine.run_once())
        assert len(openai.turns) == 1 and len(anthropic.turns) == 2
    task = engine.ledger.task("T2-16")
    assert task is not None
    assert (task.status, task.agent, task.model) == ("merged", "claude", "claude-sonnet-4-5")
    [fallback] = engine.ledger.events(types=[ev.ROUTE_FALLBACK], task_id="T2-16")
    assert fallback.payload["from"] == "codex" and fallback.payload["to"] == "claude"
    assert fallback.payload["reason"] == "server_error"
    assert fallback.payload["result"]["classification"] == "RETRYABLE_TRANSIENT"
    assert fallback.payload["result"]["failure_kind"] == "server_error"
    [result] = engine.ledger.events(types=[ev.DISPATCH_RESULT], task_id="T2-16")
    assert result.payload["agent"] == "claude"
    # `oxi task show` names the route, the fallback and the agent and model that ran.
    [attempt] = task_timeline(engine.ledger, engine.config.paths, task)["attempts"]
    assert attempt["route"] == {"rule": "doc-tier-2-to-codex", "agent": "codex",
                                "model": "gpt-5.5", "fallbacks": [{
                                    "from": "codex", "to": "claude",
                                    "model": "claude-sonnet-4-5", "reason": "server_error"}]}
    assert (attempt["agent"], attempt["model"]) == ("claude", "claude-sonnet-4-5")
    shown = CliRunner().invoke(cli, ["--config", str(engine.config.path), "task", "show",
                                     "T2-16"])
    assert "  routed to codex gpt-5.5 by routing.yaml rule doc-tier-2-to-codex" in shown.output
    assert ("  fell back from codex to claude claude-sonnet-4-5 (server_error)"
            in shown.output)
