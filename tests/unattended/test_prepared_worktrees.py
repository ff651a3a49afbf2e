"""T2-47: `oxi saturate` makes the next tasks' worktrees before a slot frees, without claiming
them; a claim takes its task's worktree, moved to the base as fetched now; whatever no claim
took is removed with its branch when saturate stops, and after a crash the sweep removes it
(it holds no work): no worktree is left for the kept-worktree logic to report."""

from __future__ import annotations

import asyncio
import json
import signal

from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing.repos import run_git
from tests.conftest import roadmap
from tests.unattended.support import events_of, ledger_of, run_oxi, wait_for

ITEMS = (("T1-5", "first", "notes"), ("T1-6", "second", "notes"),
         ("T1-7", "third", "notes"), ("T1-8", "fourth", "notes"))


def held_saturate(repo_factory, oxi, tmp_path):
    """`oxi saturate -j 1` with T1-6's agent held, once T1-7's worktree is made ahead."""
    hold = tmp_path / "release-T1-6"
    repo = repo_factory(roadmap(*ITEMS),
                        agent_env={"AGENT_HOLD": f"T1-6={hold}", "AGENT_SLEEPS": "T1-5=1"})
    daemon = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    wait_for(lambda: [e for e in events_of(repo, ev.WORKER_STARTED) if e.task_id == "T1-6"],
             timeout=120, what="T1-6's agent to start")
    ahead = repo.root / ".oxi" / "worktrees" / "T1-7"
    wait_for(lambda: made(repo, ahead), timeout=120, what="T1-7's worktree ahead")
    return repo, daemon, hold, ahead


def made(repo, path) -> bool:
    """``path`` is a worktree git has finished adding (while it adds one, git keeps it locked
    as "initializing", and removes it again if it is killed before the end)."""
    listing = run_git(["worktree", "list", "--porcelain"], repo.root).split("\n\n")
    return any(block.startswith(f"worktree {path.resolve()}\n") and "\nlocked" not in block
               for block in listing)


def branches(repo, pattern: str) -> list[str]:
    return run_git(["branch", "--list", pattern, "--format=%(refname:short)"],
                   repo.root).splitlines()


def test_a_claim_takes_its_worktree_made_ahead_and_a_stop_removes_the_rest(
    repo_factory, oxi, tmp_path
) -> None:
    repo, daemon, hold, ahead = held_saturate(repo_factory, oxi, tmp_path)
    with ledger_of(repo) as ledger:  # nothing claimed ahead: the ledger does not know of it
        assert ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-7") == []
    created = {e.task_id: e.payload for e in events_of(repo, ev.WORKTREE_CREATED)}
    assert created["T1-6"].get("prepared") is True  # made while T1-5's agent ran
    assert "prepared" not in created["T1-5"]

    daemon.signal(signal.SIGTERM)
    hold.touch()
    assert daemon.wait(timeout=120) == 0, daemon.stderr

    with ledger_of(repo) as ledger:
        tasks = {t.id: t for t in ledger.tasks()}
        assert tasks["T1-6"].status is TaskStatus.MERGED
        for task_id in ("T1-7", "T1-8"):
            assert tasks[task_id].status is TaskStatus.PLANNED
            assert ledger.events(types=[ev.TASK_CLAIMED], task_id=task_id) == []
        assert ledger.events(types=[ev.WORKTREE_KEPT]) == []
        # T1-5's slot was refilled the moment its agent ended, before its own delivery.
        (claimed,) = ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-6")
        (pushed,) = ledger.events(types=[ev.BRANCH_PUSHED], task_id="T1-5")
        assert claimed.id < pushed.id
    assert not ahead.exists()
    assert branches(repo, "oxi/T1-7*") == [] and branches(repo, "oxi/T1-8*") == []
    assert run_git(["worktree", "list", "--porcelain"], repo.root).count("worktree ") == 1


def test_after_a_crash_the_sweep_removes_a_worktree_made_ahead_as_holding_nothing(
    repo_factory, oxi, tmp_path
) -> None:
    repo, daemon, hold, ahead = held_saturate(repo_factory, oxi, tmp_path)
    daemon.signal(signal.SIGKILL)
    daemon.wait(timeout=60)

    listed = run_oxi(["worktree", "list", "--json"], cwd=repo.root)
    assert listed.returncode == 0, listed.stderr
    assert "T1-7" in listed.stdout
    pruned = run_oxi(["worktree", "prune", "--json"], cwd=repo.root)
    report = json.loads(pruned.stdout)
    assert "T1-7" in report["removed"], report
    assert not any("T1-7" in json.dumps(entry) for entry in report.get("kept", [])), report
    assert not ahead.exists()
    hold.touch()


def test_a_worktree_made_ahead_is_moved_to_a_base_that_moved_and_left_to_another_claim(
    repo_factory
) -> None:
    repo = repo_factory(roadmap(*ITEMS[:2]))
    capacity = [0]
    engine = Engine(load_config(repo.config), capacity=lambda: capacity[0])
    try:
        asyncio.run(engine.tick())  # the roadmap read; no slot, nothing claimed
        engine.prepared.ahead = 2
        asyncio.run(engine.prepared.refresh())
        made_on = run_git(["rev-parse", "origin/main"], repo.root)
        for task_id in ("T1-5", "T1-6"):
            assert (repo.root / ".oxi" / "worktrees" / task_id / ".git").is_file()
        # Another engine claims T1-6: its worktree is that claim's now, never removed here.
        assert engine.ledger.claim("T1-6", event_type=ev.TASK_CLAIMED, payload={},
                                   supervisor_pid=1, worker_host="elsewhere")
        # The base moves; this engine fetches it before claiming T1-5.
        repo.write("theirs.txt", "theirs\n")
        repo.commit_and_push("their commit")
        moved = run_git(["rev-parse", "main"], repo.origin)
        engine.fetch_origin(max_age_s=0)
        capacity[0] = 2  # (T1-6, claimed elsewhere, holds one slot)
        asyncio.run(engine.run_once())

        task = engine.ledger.task("T1-5")
        assert task is not None and task.status is TaskStatus.MERGED, [
            (e.type, e.payload) for e in engine.ledger.events()][-12:]
        (created,) = engine.ledger.events(types=[ev.WORKTREE_CREATED], task_id="T1-5")
        assert created.payload.get("prepared") is True
        (pushed,) = engine.ledger.events(types=[ev.BRANCH_PUSHED], task_id="T1-5")
        assert moved != made_on
        assert run_git(["rev-parse", f"{pushed.payload['head']}^"], repo.origin) == moved
        # Its files are the agent's alone: the index delivery compares with is the one the
        # reset to the moved base wrote, not the one made ahead (T2-49).
        by_diff = run_git(["diff", "--name-only", f"{moved}..{pushed.payload['head']}"],
                          repo.origin).splitlines()
        assert pushed.payload["files"] == by_diff and "theirs.txt" not in by_diff
        asyncio.run(engine.prepared.discard_all())
        assert (repo.root / ".oxi" / "worktrees" / "T1-6" / ".git").is_file()
    finally:
        engine.ledger.close()


def test_a_refill_that_fails_is_no_failure_of_the_worker_whose_agent_ended(
    repo_factory, monkeypatch
) -> None:
    # The refill runs inside the ended agent's worker: its error must not reach that worker
    # (which would requeue a task whose work is done); the loop's tick dispatches instead.
    from oxi_core.engine.saturate import Saturate

    repo = repo_factory(roadmap(*ITEMS[:1]))
    saturate = Saturate(load_config(repo.config), concurrency=1, capacity=lambda n: n)
    try:
        def broken(report=None):
            raise OSError("disk I/O error")

        monkeypatch.setattr(saturate.engine, "refill", broken)
        saturate._refill()
        assert saturate._agent_done.is_set()
    finally:
        saturate.engine.ledger.close()
