"""An item deleted from roadmap.md while its agent runs: the worker is stopped within a tick,
the task is abandoned, and the worktree holding its unpushed work is kept and named."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.models import PullRequestState
from oxi_core.tasks import TaskStatus
from tests.conftest import load, roadmap, tick
from tests.unattended.support import alive, events_of, ledger_of, run_oxi, wait_for

INTERVAL = 0.2


def test_an_item_removed_while_its_agent_runs_is_cancelled_and_its_work_kept(
    repo_factory, oxi
) -> None:
    repo = repo_factory(
        roadmap(("T1-5", "doomed", "n"), ("T1-6", "stays", "n")),
        agent_env={"AGENT_SLEEPS": "T1-5=30,T1-6=4", "AGENT_WRITE_FIRST": "1"})
    daemon = oxi.start(["saturate", "-j", "2", "--interval", str(INTERVAL)], repo)

    def both_wrote() -> list[int] | None:
        started = {e.task_id: e.payload["pid"] for e in events_of(repo, ev.WORKER_STARTED)}
        with ledger_of(repo) as ledger:
            said = {t.id for t in ledger.tasks() if t.last_event}
        return [started[t] for t in ("T1-5", "T1-6")] if said >= {"T1-5", "T1-6"} else None

    doomed_pid, other_pid = wait_for(both_wrote, timeout=30, what="both agents to write")
    tree = repo.root / ".oxi" / "worktrees" / "T1-5"
    assert (tree / "notes" / "T1-5.txt").read_text() == "T1-5 was here\n"

    (repo.root / "roadmap.md").write_text(roadmap(("T1-6", "stays", "n")))
    removed_at = time.monotonic()
    wait_for(lambda: not alive(doomed_pid), timeout=5, what="the doomed agent to stop")
    stopped_after = time.monotonic() - removed_at
    # A tick notices the removal (within INTERVAL), then the agent's group gets SIGTERM.
    assert stopped_after < INTERVAL + 1.5, stopped_after
    assert alive(other_pid)  # the other worker is untouched

    (cancelled,) = wait_for(lambda: events_of(repo, ev.TASK_CANCELLED), what="the event")
    assert cancelled.task_id == "T1-5"
    assert cancelled.payload["worktree_kept"] == str(tree)
    assert cancelled.payload["unpushed"]
    with ledger_of(repo) as ledger:
        task = ledger.task("T1-5")
        assert task is not None and task.status is TaskStatus.ABANDONED
        assert not task.in_roadmap
        types = [e.type for e in ledger.events(task_id="T1-5")]
        assert types.index(ev.TASK_ABANDONED) < types.index(ev.TASK_CANCELLED)
        assert ev.BRANCH_PUSHED not in types and ev.PR_OPENED not in types
    # The unpushed work is still there, where the event says.
    assert (tree / "notes" / "T1-5.txt").read_text() == "T1-5 was here\n"
    assert "oxi/T1-5" not in repo.git("ls-remote", "--heads", "origin")

    # Stopping saturate now waits for the other worker, which is killed by nobody.
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0, daemon.stderr
    with ledger_of(repo) as ledger:
        assert ledger.task("T1-6").status is TaskStatus.MERGED  # type: ignore[union-attr]
    assert Path(tree).is_dir()


def test_an_item_removed_while_in_review_has_its_pr_closed_with_a_comment(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "left for a person", "n")), critic=False)
    engine = Engine(load(repo))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW and task.pr_number
    (repo.root / "roadmap.md").write_text(roadmap(("T1-6", "another", "n")))
    engine.stop_dispatching = True  # T1-6 need not run here
    asyncio.run(engine.tick())
    forge = engine.config.forge
    pr = forge.get_pr(task.pr_number)
    assert pr.state is PullRequestState.CLOSED
    assert forge.comments(task.pr_number) == [
        "Closed by oxi: the item was removed from the roadmap."]
    after = engine.ledger.task("T1-5")
    assert after is not None and after.status is TaskStatus.ABANDONED
    (closed,) = engine.ledger.events(types=[ev.PR_CLOSED], task_id="T1-5")
    assert closed.payload["pr"] == task.pr_number


def test_a_pr_closed_by_a_person_stays_closed(repo_factory) -> None:
    """The task is abandoned, and the next ticks do not reopen it and open another PR."""
    repo = repo_factory(roadmap(("T1-5", "unwanted", "n")), critic=False)
    engine = Engine(load(repo))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.pr_number is not None
    engine.config.forge.close_pr(task.pr_number, "not what we want")
    for _ in range(3):
        tick(engine)
    after = engine.ledger.task("T1-5")
    assert after is not None and after.status is TaskStatus.ABANDONED
    assert len(engine.ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-5")) == 1
    assert engine.ledger.query("SELECT count(*) FROM pull_requests") == [(1,)]
    # `oxi task retry` is how an operator asks for it again.
    retried = run_oxi(["task", "retry", "T1-5"], cwd=repo.root)
    assert retried.returncode == 0, retried.stderr
    report = tick(engine)
    assert report.dispatched == ["T1-5"]
    assert engine.ledger.task("T1-5").status is TaskStatus.IN_REVIEW  # type: ignore[union-attr]


def test_a_pr_closed_by_a_person_while_its_next_attempt_runs_stops_the_worker(
    repo_factory, oxi
) -> None:
    # T1-3's first attempt is rejected by the critic and its PR stays open for the second,
    # which runs long; a person closes the PR meanwhile.
    repo = repo_factory(roadmap(("T1-3", "answer again", "feature_3.py")),
                        agent_env={"AGENT_WRITE_FIRST": "1"})
    oxi.watch(repo)
    engine = Engine(load(repo))
    tick(engine)
    task = engine.ledger.task("T1-3")
    assert task is not None and task.status is TaskStatus.PLANNED and task.pr_number
    pr_number = task.pr_number
    engine.config.instances["agents"]["worker"].env = {"AGENT_SLEEP": "30",
                                                       "AGENT_WRITE_FIRST": "1"}

    async def scenario() -> float:
        report = await engine.tick()
        assert report.dispatched == ["T1-3"]
        pid = await asyncio.to_thread(wait_for, lambda: engine.ledger.task("T1-3").worker_pid,
                                      what="the second attempt's agent")
        await asyncio.sleep(0.3)  # it wrote its work
        engine.config.forge.close_pr(pr_number, "closing this, thanks")
        closed_at = time.monotonic()
        await engine.tick()
        await engine.wait_for_workers()
        assert not alive(pid)
        return time.monotonic() - closed_at

    took = asyncio.run(scenario())
    assert took < 5
    after = engine.ledger.task("T1-3")
    assert after is not None and after.status is TaskStatus.ABANDONED
    (closed,) = engine.ledger.events(types=[ev.PR_CLOSED], task_id="T1-3")
    assert closed.payload["pr"] == pr_number
    (cancelled,) = engine.ledger.events(types=[ev.TASK_CANCELLED], task_id="T1-3")
    tree = repo.root / ".oxi" / "worktrees" / "T1-3"
    assert cancelled.payload["worktree_kept"] == str(tree)
    assert (tree / "feature_3.py").read_text() == "ANSWER = 42\n"
    assert engine.ledger.query("SELECT count(*) FROM pull_requests") == [(1,)]
    tick(engine)
    assert engine.ledger.task("T1-3").status is TaskStatus.ABANDONED  # type: ignore[union-attr]
