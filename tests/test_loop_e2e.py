"""The loop end to end on a real repository: exec agent, local forge, command critic."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from oxi_core.cli import cli
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.status import status_report
from tests.conftest import load, roadmap, tick

THREE_ITEMS = roadmap(
    ("T1-1", "answer the question", "feature_1.py holds the answer"),
    ("T1-2", "call a flaky provider", "it is always overloaded"),
    ("T1-3", "answer again", "feature_3.py holds the answer"),
)


def settle(engine: Engine, ticks: int = 8) -> None:
    """Tick until nothing is planned, retrying or dispatched (retries are due fast here)."""
    for _ in range(ticks):
        tick(engine)
        open_ = [t for t in engine.ledger.tasks()
                 if t.status in ("planned", "retrying", "dispatched", "in_review")]
        if not open_:
            return
        time.sleep(0.25)


def test_three_items_merge_fail_and_fix_after_review(repo_factory, prompt_log: Path) -> None:
    repo = repo_factory(THREE_ITEMS, engine={"max_concurrent": 3},
                        agent_env={"PROMPT_LOG": str(prompt_log)})
    engine = Engine(load(repo))
    settle(engine)
    tasks = {t.id: t for t in engine.ledger.tasks()}

    assert tasks["T1-1"].status == "merged"
    assert repo.origin_file("feature_1.py") == "ANSWER = 42\n"

    assert tasks["T1-2"].status == "failed"
    assert tasks["T1-2"].attempts == 3
    assert "exited 75" in (tasks["T1-2"].last_error or "")
    assert "after 3 attempts" in (tasks["T1-2"].last_error or "")

    assert tasks["T1-3"].status == "merged"
    assert tasks["T1-3"].attempts == 2
    assert repo.origin_file("feature_3.py") == "ANSWER = 42\n"
    prompts = (prompt_log / "T1-3.log").read_text().split("\n=====\n")
    assert "A reviewer rejected" not in prompts[0]
    assert "wrong ANSWER in feature_3.py: expected 42" in prompts[1]

    # The ledger holds an event for every step.
    types_by_task = {
        task_id: [e.type for e in engine.ledger.events(task_id=task_id)]
        for task_id in tasks
    }
    for step in (ev.TASK_INGESTED, ev.TASK_CLAIMED, ev.WORKTREE_CREATED, ev.WORKER_STARTED,
                 ev.DISPATCH_RESULT, ev.BRANCH_PUSHED, ev.PR_OPENED, ev.CRITIC_VERDICT,
                 ev.AUTO_MERGE_ARMED, ev.TASK_MERGED, ev.WORKTREE_REMOVED):
        assert step in types_by_task["T1-1"], step
    assert types_by_task["T1-2"].count(ev.RETRY_SCHEDULED) == 2
    assert ev.TASK_FAILED in types_by_task["T1-2"]
    verdicts = [e.payload["verdict"] for e in engine.ledger.events(
        types=[ev.CRITIC_VERDICT], task_id="T1-3")]
    assert verdicts == ["REJECT", "APPROVE"]

    # `oxi status --json` agrees with the ledger.
    result = CliRunner().invoke(cli, ["--config", str(repo.config), "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert {t["id"]: t["status"] for t in status["tasks"]} == {
        "T1-1": "merged", "T1-2": "failed", "T1-3": "merged"}
    assert status == status_report(engine.ledger, now=None, recent=10) | {
        "recent_events": status["recent_events"], "version": 1, "command": "status",
        "local_base_behind": status["local_base_behind"]}
    assert status["local_base_behind"]["behind"] == 2  # the two merges landed on origin only
    spent = sum(e.cost_usd for e in engine.ledger.events())
    assert abs(status["cost_total_usd"] - spent) < 1e-9

    # Nothing is left behind: no worktree, no branch but main on origin.
    assert not any((repo.root / ".oxi" / "worktrees").iterdir())
    heads = repo.git("ls-remote", "--heads", "origin")
    assert [line.split("refs/heads/")[1] for line in heads.splitlines()] == ["main"]


def test_success_without_changes_is_failed_never_merged(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-4", "do nothing", "the agent changes nothing")))
    engine = Engine(load(repo))
    tick(engine)
    task = engine.ledger.task("T1-4")
    assert task is not None and task.status == "failed"
    assert (task.last_error or "").startswith("no changes")
    assert repo.origin_log() == ["initial commit"]


def test_tick_with_nothing_to_do_changes_nothing(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-1", "answer the question", "feature_1.py")))
    engine = Engine(load(repo))
    tick(engine)
    assert engine.ledger.task("T1-1").status == "merged"  # type: ignore[union-attr]
    before_events = engine.ledger.count_events()
    before_db = engine.ledger.query("SELECT * FROM tasks")
    before_state = engine.ledger.query("SELECT * FROM engine_state ORDER BY key")
    before_refs = repo.git("for-each-ref")
    # The same engine, and a new one (what the next `oxi tick` process is).
    for engine_now in (engine, Engine(load(repo))):
        report = tick(engine_now)
        assert report.dispatched == [] and report.ingested == []
        assert engine.ledger.count_events() == before_events
        assert engine.ledger.query("SELECT * FROM tasks") == before_db
        assert engine.ledger.query("SELECT * FROM engine_state ORDER BY key") == before_state
        assert repo.git("for-each-ref") == before_refs
