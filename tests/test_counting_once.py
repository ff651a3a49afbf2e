"""Tokens and dollars are counted once: cumulative totals win over deltas, and recording the
same result twice changes nothing."""

from __future__ import annotations

import asyncio
import json

from oxi_codex.events import CodexStream, build_result

from oxi_core.agentic.runner import RunOutcome
from oxi_core.agentic.types import DispatchResult, Usage
from oxi_core.engine.dispatch import Worker
from oxi_core.engine.engine import Engine
from oxi_core.engine.ingest import apply_ingest
from oxi_core.ledger import events as ev
from oxi_core.models import Classification
from oxi_core.roadmap import load_roadmap
from oxi_core.tasks import TaskStatus
from tests.conftest import load, roadmap


def turn_completed(total: int) -> str:
    return json.dumps({"type": "turn.completed", "usage": {
        "input_tokens": total, "cached_input_tokens": 0, "output_tokens": 0,
        "reasoning_output_tokens": 0}})


def test_a_cumulative_sequence_100_250_400_records_400_tokens() -> None:
    lines = [json.dumps({"type": "thread.started", "thread_id": "t-1"})]
    for total in (100, 250, 400):
        lines += [json.dumps({"type": "turn.started"}), turn_completed(total)]
    run = CodexStream().feed_lines(lines)
    result = build_result(run, RunOutcome(exit_code=0, duration_s=1.0, pid=1), model="gpt-5.5")
    assert result.usage == Usage(input_tokens=400)
    assert result.usage.total == 400


def test_recording_the_same_result_twice_changes_nothing(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False)
    engine = Engine(load(repo))
    apply_ingest(engine.ledger, load_roadmap(engine.config.paths.roadmap))
    assert engine.ledger.claim("T1-5", event_type=ev.TASK_CLAIMED, payload={})
    item = load_roadmap(engine.config.paths.roadmap).get("T1-5")
    assert item is not None
    worker = Worker(engine, "T1-5", item, asyncio.Event())
    result = DispatchResult(Classification.SUCCESS, cost_usd=0.25,
                            usage=Usage(input_tokens=400), session_id="s-1")
    task = worker.task()
    worker.record_result(task, result)
    events_after_one = engine.ledger.count_events()
    worker.record_result(task, result)
    assert engine.ledger.count_events() == events_after_one
    recorded = engine.ledger.events(types=[ev.DISPATCH_RESULT])
    assert len(recorded) == 1
    assert recorded[0].payload["input_tokens"] == 400
    after = engine.ledger.task("T1-5")
    assert after is not None and after.status is TaskStatus.DISPATCHED
    assert after.cost_usd == 0.25
    assert after.tokens == 400
    assert engine.ledger.total_spend() == 0.25
