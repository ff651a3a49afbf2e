"""Cost truth (issue 9, point 4): every run's cost is recorded once, under its own attempt; a
run cut short is priced from what it showed and flagged; an agent over its cap is an event, a
notification, and past the day's allowance a pause."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import tomli_w

from oxi_core.agentic.rates import cost_usd
from oxi_core.agentic.types import Usage
from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing.agent_clis import claude_binary
from oxi_core.testing.anthropic_server import AnthropicServer
from oxi_core.testing.model_server import Reply, Script, Stall, Text
from oxi_core.testing.model_server import Usage as ScriptedUsage
from oxi_core.testing.repos import make_repo
from tests.conftest import load, roadmap, tick
from tests.unattended.support import assert_ledger_consistent, run_oxi


def test_a_retried_task_records_every_runs_cost_under_attempts_that_only_grow(
    repo_factory, prompt_log: Path
) -> None:
    # T1-2 reports its cost, then fails transiently: three attempts, then FAILED.
    repo = repo_factory(roadmap(("T1-2", "flaky", "always overloaded")),
                        agent_env={"AGENT_REPORT_FIRST": "1", "PROMPT_LOG": str(prompt_log)})

    def run_until_failed() -> None:
        engine = Engine(load(repo))
        deadline = time.monotonic() + 60
        while (task := engine.ledger.task("T1-2")) is None or task.status is not TaskStatus.FAILED:
            assert time.monotonic() < deadline, "T1-2 never failed"
            tick(engine)
            time.sleep(0.05)
        engine.ledger.close()

    run_until_failed()
    retried = run_oxi(["task", "retry", "T1-2"], cwd=repo.root)
    assert retried.returncode == 0, retried.stderr
    run_until_failed()  # the operator's retry gets a full round of attempts again

    with Ledger(repo.root / ".oxi" / "oxi.db") as ledger:
        runs = ledger.events(types=[ev.WORKER_STARTED], task_id="T1-2")
        results = ledger.events(types=[ev.DISPATCH_RESULT], task_id="T1-2")
        assert len(runs) == 6
        assert [r.payload["attempt"] for r in results] == [1, 2, 3, 4, 5, 6]
        assert [c.payload["attempt"] for c in ledger.events(types=[ev.TASK_CLAIMED])] == [
            1, 2, 3, 4, 5, 6]
        task = ledger.task("T1-2")
        assert task is not None and task.attempts == 6
        assert task.cost_usd == pytest.approx(0.06)
        assert ledger.total_spend() == pytest.approx(0.06)  # not 0.03: nothing dropped
        assert_ledger_consistent(ledger)


@pytest.mark.real_cli
@pytest.mark.skipif(claude_binary() is None, reason="run scripts/install-agent-clis")
def test_a_claude_run_that_stalls_after_printing_usage_is_priced_and_flagged(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "say hello", "hello.txt"))})
    # The model starts its answer (message_start carries the input tokens), then goes silent
    # before the first block ends: claude prints the usage only in its stream events.
    usage = ScriptedUsage(input_tokens=50_000, output_tokens=300)
    script = Script([Stall(Reply(Text("half an answer " * 20), usage=usage), after_events=2)])
    with AnthropicServer(script) as server:
        repo.write("oxi.toml", tomli_w.dumps({
            "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
            "engine": {"stall_timeout_s": 4.0},
            "agents": {"worker": {"type": "claude", "kwargs": {
                "binary": str(claude_binary()), "base_url": server.base_url,
                "api_key": "test", "model": "claude-sonnet-4-5",
                "home": str(tmp_path / "home")}}},
            "forges": {"local": {"type": "local"}},
        }))
        engine = Engine(load_config(repo.config))
        asyncio.run(engine.run_once())

    (result,) = engine.ledger.events(types=[ev.DISPATCH_RESULT])
    assert result.payload["classification"] == "RETRYABLE_TRANSIENT"
    assert "stalled" in result.payload["reason"]
    assert result.payload["input_tokens"] == 50_000
    expected = cost_usd("claude-sonnet-4-5",
                        Usage(input_tokens=50_000, output_tokens=result.payload["output_tokens"]))
    assert expected is not None and expected > 0.1
    assert result.cost_usd == pytest.approx(expected)
    assert result.payload["cost_source"] == "estimate"
    (flag,) = engine.ledger.events(types=[ev.BUDGET_UNDERCOUNT])
    assert flag.task_id == "T1-1" and flag.payload["cost_usd"] == pytest.approx(expected)
    assert engine.spent_today() == pytest.approx(expected)


def test_an_agent_over_its_cap_is_an_event_a_notification_and_pauses_the_engine(
    repo_factory, prompt_log: Path
) -> None:
    # Per-task cap $0.05, daily cap $0.10; the exec agent reports $1.00 for its run.
    repo = repo_factory(
        roadmap(("T1-5", "a note", "n"), ("T1-6", "another", "n")),
        engine={"default_task_cap_usd": 0.05, "budget_per_day_usd": 0.10},
        agent_env={"AGENT_COST": "1.00", "PROMPT_LOG": str(prompt_log)})

    first = run_oxi(["tick"], cwd=repo.root)
    assert first.returncode == 0, first.stderr
    # The cap reached the agent, in its environment.
    assert (prompt_log / "T1-5.cap").read_text() == "0.05\n"

    with Ledger(repo.root / ".oxi" / "oxi.db") as ledger:
        (over,) = ledger.events(types=[ev.TASK_CAP_EXCEEDED])
        assert over.task_id == "T1-5"
        assert over.payload["cost_usd"] == 1.0 and over.payload["cap_usd"] == 0.05
        (paused,) = ledger.events(types=[ev.ENGINE_PAUSED])
        assert paused.payload["by"] == "engine"
        assert "$1.00" in paused.payload["reason"] and "$0.10" in paused.payload["reason"]
        assert ledger.state_get("paused") is not None
    # The log notifier's lines: the event and its ledger id.
    logged = [json.loads(line) for line in first.stderr.splitlines() if line.startswith("{")]
    notified = [line["event"] for line in logged if "event_id" in line]
    assert ev.TASK_CAP_EXCEEDED in notified and ev.ENGINE_PAUSED in notified, first.stderr

    # The killswitch holds until an operator looks: nothing else runs.
    second = run_oxi(["tick"], cwd=repo.root)
    assert second.returncode == 0, second.stderr
    with Ledger(repo.root / ".oxi" / "oxi.db") as ledger:
        assert [e.task_id for e in ledger.events(types=[ev.WORKER_STARTED])] == ["T1-5"]


def test_agents_within_their_caps_never_pause_the_engine(repo_factory) -> None:
    # Three runs at once, each over its estimate but within its cap: the day's spend passes
    # the daily cap by what the caps allow, and that is no reason to pause.
    repo = repo_factory(
        roadmap(*[(f"T1-{n}", f"note {n}", "n") for n in (5, 6, 7)]),
        engine={"task_caps_usd": {"exec": 0.5}, "estimates_usd": {"exec": 0.3},
                "budget_per_day_usd": 1.0, "max_concurrent": 3},
        agent_env={"AGENT_COST": "0.45", "AGENT_SLEEP": "0.3"})
    engine = Engine(load(repo))
    tick(engine)
    assert len(engine.ledger.events(types=[ev.DISPATCH_RESULT])) == 3
    assert engine.spent_today() == pytest.approx(1.35)
    assert engine.ledger.events(types=[ev.TASK_CAP_EXCEEDED, ev.ENGINE_PAUSED]) == []
