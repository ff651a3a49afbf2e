"""What the engine does with an agent's own signals: a version drift pauses the engine (every
task would fail the same way), and a cost the agent could not fully count is an event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import tomli_w

from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.testing.agent_clis import codex_binary
from oxi_core.testing.model_server import Script, Text, ToolCall
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.repos import make_repo
from tests.conftest import roadmap

pytestmark = [pytest.mark.real_cli,
              pytest.mark.skipif(codex_binary() is None, reason="run scripts/install-agent-clis")]


def tick_with_codex(tmp_path: Path, server: OpenAIServer, **kwargs: object) -> Engine:
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "say hello", "hello.txt"))})
    repo.write("oxi.toml", tomli_w.dumps({
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "agents": {"codex": {"type": "codex", "kwargs": {
            "binary": str(codex_binary()), "base_url": server.api_base_url,
            "provider": "scripted", "api_key": "test", "codex_home": str(tmp_path / "ch"),
            "home": str(tmp_path / "home"), **kwargs}}},
        "forges": {"local": {"type": "local"}},
    }))
    engine = Engine(load_config(repo.config))
    asyncio.run(engine.run_once())
    return engine


def test_a_drifted_binary_requeues_the_task_and_pauses_the_engine(tmp_path: Path) -> None:
    with OpenAIServer(Script([Text("never reached")])) as server:
        engine = tick_with_codex(tmp_path, server, pinned_version="0.1.0")
        assert server.turns == ()
    task = engine.ledger.task("T1-1")
    assert task is not None and task.status == "planned"
    assert "pinned to 0.1.0" in (task.last_error or "")
    assert engine.paused()
    (paused,) = engine.ledger.events(types=[ev.ENGINE_PAUSED])
    assert "cannot run" in paused.payload["reason"]
    assert engine.ledger.events(types=[ev.TASK_FAILED]) == []


def test_a_model_missing_from_the_rate_card_records_a_budget_undercount(tmp_path: Path) -> None:
    script = Script([ToolCall.write("hello.txt", "hello\n"), Text("done")])
    with OpenAIServer(script, models=("gpt-5.5", "mystery-model")) as server:
        engine = tick_with_codex(tmp_path, server, model="mystery-model")
    (undercount,) = engine.ledger.events(types=[ev.BUDGET_UNDERCOUNT])
    assert undercount.task_id == "T1-1"
    assert undercount.payload["agent"] == "codex"
    assert undercount.payload["reason"]
