"""A rejected credential is a setup error, not a failed task (issue 9.7): every task would meet
the same 401, so the task goes back to planned with its attempt not counted, the engine pauses,
the operator is notified, and the message names the key to fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing.agent_clis import claude_binary, codex_binary
from oxi_core.testing.anthropic_server import AnthropicServer
from oxi_core.testing.model_server import ErrorReply, Script
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.repos import make_repo
from tests.conftest import roadmap

KEY_VAR = "OXI_TEST_AGENT_KEY"
ITEMS = [(f"T1-{n}", f"item {n}", f"notes/T1-{n}.txt") for n in (5, 6, 7)]

# An exec agent's way of saying its credentials were refused: exit 77 (EX_NOPERM).
REFUSED_EXEC_AGENT = (
    "import sys; print('401 Unauthorized: invalid api key', file=sys.stderr); sys.exit(77)"
)

Agent = Callable[[Path], Iterator[dict[str, Any]]]


@contextmanager
def claude_agent(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with AnthropicServer(Script([ErrorReply.unauthorized()] * 3)) as server:
        yield {"type": "claude", "kwargs": {
            "binary": str(claude_binary()), "base_url": server.base_url,
            "api_key": {"env": KEY_VAR}, "home": str(tmp_path / "home")}}


@contextmanager
def codex_agent(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with OpenAIServer(Script([ErrorReply.unauthorized()] * 3)) as server:
        yield {"type": "codex", "kwargs": {
            "binary": str(codex_binary()), "provider": "scripted",
            "base_url": server.api_base_url, "api_key": {"env": KEY_VAR},
            "codex_home": str(tmp_path / "codex-home"), "home": str(tmp_path / "home")}}


@contextmanager
def exec_agent(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield {"type": "exec", "kwargs": {"argv": [sys.executable, "-c", REFUSED_EXEC_AGENT],
                                      "env": {"AGENT_KEY": {"env": KEY_VAR}}}}


AGENTS = [
    pytest.param(claude_agent, id="claude", marks=[pytest.mark.real_cli, pytest.mark.skipif(
        claude_binary() is None, reason="run scripts/install-agent-clis")]),
    pytest.param(codex_agent, id="codex", marks=[pytest.mark.real_cli, pytest.mark.skipif(
        codex_binary() is None, reason="run scripts/install-agent-clis")]),
    pytest.param(exec_agent, id="exec"),
]


@pytest.mark.parametrize("agent", AGENTS)
def test_three_items_every_answer_401_one_tick_all_still_planned_and_the_engine_paused(
    tmp_path: Path, agent: Any
) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(*ITEMS)})
    with agent(tmp_path) as worker:
        repo.write("oxi.toml", tomli_w.dumps({
            "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
            "engine": {"max_concurrent": 3},
            "agents": {"worker": worker},
            "forges": {"local": {"type": "local"}},
        }))
        env = {**os.environ, KEY_VAR: "sk-test-rejected-key", "OXI_RAISE_ERRORS": "0"}
        env.pop("PYTEST_CURRENT_TEST", None)
        done = subprocess.run([sys.executable, "-m", "oxi_core", "tick", "--json"],
                              cwd=repo.root, env=env, capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"]["paused"] is True
    with Ledger(repo.root / ".oxi" / "oxi.db") as ledger:
        tasks = {task.id: task for task in ledger.tasks()}
        assert {task_id: str(task.status) for task_id, task in tasks.items()} == {
            task_id: str(TaskStatus.PLANNED) for task_id, _, _ in ITEMS}
        assert all(task.round_attempts == 0 for task in tasks.values())  # none was burnt
        assert ledger.events(types=[ev.TASK_FAILED]) == []
        (paused,) = ledger.events(types=[ev.ENGINE_PAUSED])
        reason = paused.payload["reason"]
        assert "credentials" in reason and KEY_VAR in reason, reason
        assert "[agents.worker]" in reason, reason
        assert ledger.events(types=[ev.NOTIFY_FAILED]) == []
    # The notification: the log notifier wrote the pause to the log.
    assert ev.ENGINE_PAUSED in done.stderr and KEY_VAR in done.stderr
    assert "sk-test-rejected-key" not in done.stderr + done.stdout
