"""Budgets: the daily cap with costs arriving from concurrent workers, per-task caps passed to
the agent, and a task estimated over its cap held until the operator releases it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import attrs
import pytest

from oxi_core.agentic.types import DispatchRequest, DispatchResult
from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.models import PullRequestSubject, Verdict, VerdictKind
from oxi_core.plugins import load_plugins
from oxi_core.registry import Registration, build_registry
from oxi_core.tasks import TaskStatus
from tests.conftest import load, roadmap
from tests.unattended.support import (
    assert_ledger_consistent,
    events_of,
    ledger_of,
    run_oxi,
    status_json,
)

CAP = 1.0
TASK_CAP = 0.5
BUDGET_ENGINE = {"task_caps_usd": {"exec": TASK_CAP}, "estimates_usd": {"exec": 0.3}}
SIX = roadmap(*[(f"T1-{n}", f"note {n}", "its own notes file") for n in range(5, 11)])


@pytest.mark.parametrize("cost", [0.45, 0.3], ids=["runs-cost-more-than-estimated",
                                                   "runs-cost-as-estimated"])
def test_the_daily_cap_holds_with_concurrent_workers_and_saturate_exits_zero(
    repo_factory, oxi, cost: float
) -> None:
    repo = repo_factory(SIX, engine=BUDGET_ENGINE,
                        agent_env={"AGENT_SLEEP": "0.5", "AGENT_COST": str(cost)})
    daemon = oxi.start(["saturate", "-j", "3", "--interval", "0.2", "--max-cost-per-day",
                        str(CAP)], repo)
    assert daemon.wait(timeout=60) == 0, daemon.stderr
    assert "stopped (daily_budget_reached)" in daemon.stdout
    assert not (repo.root / ".oxi" / "saturate.pid").exists()

    with ledger_of(repo) as ledger:
        events = ledger.events()
        total = ledger.total_spend()
        claims = [e for e in events if e.type == ev.TASK_CLAIMED]
        # Three ran at once (the estimates fit), so costs arrived from concurrent workers.
        assert len(claims) == 3
        results = [e for e in events if e.type == ev.DISPATCH_RESULT]
        assert len(results) == 3 and all(r.cost_usd == cost for r in results)
        assert max(c.id for c in claims) < min(r.id for r in results)
        # Every dispatch started below the cap, and the overshoot is bounded by the per-task
        # caps of what was in flight.
        for claim in claims:
            assert sum(e.cost_usd for e in events if e.id < claim.id) < CAP
        assert total == pytest.approx(3 * cost)
        assert total <= CAP + len(claims) * TASK_CAP
        (reached,) = [e for e in events if e.type == ev.DAILY_BUDGET_REACHED]
        assert reached.id > max(r.id for r in results)
        assert reached.payload["budget_usd"] == CAP
        (stopped,) = [e for e in events if e.type == ev.SATURATE_STOPPED]
        assert stopped.payload["reason"] == "daily_budget_reached"
        assert_ledger_consistent(ledger)

    # A restart the same day stops at once, without a second daily_budget_reached.
    again = oxi.start(["saturate", "-j", "3", "--interval", "0.2", "--max-cost-per-day",
                       str(CAP)], repo)
    assert again.wait(timeout=30) == 0, again.stderr
    assert len(events_of(repo, ev.DAILY_BUDGET_REACHED)) == 1
    assert len(events_of(repo, ev.TASK_CLAIMED)) == 3
    assert status_json(repo)["cost_today_usd"] == pytest.approx(3 * cost)


class RecordingAgent:
    """The configured exec agent (a real process per run), noting each request it gets."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests: list[DispatchRequest] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def invoke(self, request: DispatchRequest) -> DispatchResult:
        self.requests.append(request)
        result: DispatchResult = await self.inner.invoke(request)
        return result


def test_the_per_task_cap_is_passed_to_the_agent(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "note", "n")),
                        engine={"task_caps_usd": {"exec": 0.35, "opus": 2.0}})
    config = load(repo)
    agent = RecordingAgent(config.instances["agents"]["worker"])
    config.instances["agents"]["worker"] = agent
    engine = Engine(config)
    asyncio.run(engine.run_once())
    (request,) = agent.requests
    assert request.max_cost_usd == 0.35
    assert engine.ledger.task("T1-5").status is TaskStatus.MERGED  # type: ignore[union-attr]


def test_a_task_estimated_over_its_cap_is_held_until_released(repo_factory, oxi) -> None:
    repo = repo_factory(roadmap(("T1-5", "expensive", "n"), ("T1-6", "cheap", "n")),
                        engine={"task_caps_usd": {"exec": 0.5},
                                "estimates_usd": {"exec": 0.8}})
    oxi.watch(repo)
    first = run_oxi(["tick", "--json"], cwd=repo.root)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    held = {h["task"]: h["reason"] for h in report["tick"]["held"]}
    assert set(held) == {"T1-5", "T1-6"}  # both estimate $0.80 against a $0.50 cap
    assert "over the per-task cap of $0.50" in held["T1-5"]
    status = status_json(repo)
    assert {h["task"] for h in status["held"]} == {"T1-5", "T1-6"}
    assert status["counts"] == {"held": 2}

    # Held is held: more ticks change nothing.
    again = run_oxi(["tick", "--json"], cwd=repo.root)
    assert json.loads(again.stdout)["tick"]["dispatched"] == []
    assert len(events_of(repo, ev.TASK_HELD)) == 2

    released = run_oxi(["task", "release", "T1-5"], cwd=repo.root)
    assert released.returncode == 0 and "T1-5 released" in released.stdout
    not_held = run_oxi(["task", "release", "T1-5"], cwd=repo.root)
    assert not_held.returncode != 0 and "not held" in not_held.stderr
    after = run_oxi(["tick", "--json"], cwd=repo.root)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["tick"]["dispatched"] == ["T1-5"]
    with ledger_of(repo) as ledger:
        assert ledger.task("T1-5").status is TaskStatus.MERGED  # type: ignore[union-attr]
        assert ledger.task("T1-6").status is TaskStatus.HELD  # type: ignore[union-attr]
        types = [e.type for e in ledger.events(task_id="T1-5")]
        assert types.index(ev.TASK_HELD) < types.index(ev.TASK_RELEASED) < types.index(
            ev.TASK_CLAIMED)
        assert_ledger_consistent(ledger)


@attrs.define
class PricedCritic:
    """A critic that approves and says what its review cost (an LLM critic would)."""

    cost_usd: float = 0.07

    def judge(self, subject: PullRequestSubject) -> Verdict:
        return Verdict(VerdictKind.APPROVE, cost_usd=self.cost_usd, cost_source="provider")


def test_a_critics_cost_counts_in_the_tasks_cost_and_todays_spend(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "note", "n")), critic=False,
                        extra_toml='\n[judges.priced]\ntype = "priced"\n')
    registry = build_registry(load_plugins())
    registry.kinds["judges"]["priced"] = Registration("judges", "priced", PricedCritic, "tests",
                                                      "tests")
    engine = Engine(load_config(repo.config, registry=registry))
    asyncio.run(engine.run_once())
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.MERGED
    assert task.cost_usd == pytest.approx(0.01 + 0.07)
    assert engine.spent_today() == pytest.approx(0.08)
    assert_ledger_consistent(engine.ledger)
