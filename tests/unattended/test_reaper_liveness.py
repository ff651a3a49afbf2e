"""T0-105: who is reaped. A claim whose supervisor lives never is, however old its heartbeat
(the supervisor records the result); a pid reused by another process is not the worker or
the supervisor; on another host's claim only the heartbeat lease counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import psutil
import pytest

from oxi_core.engine.reaper import (
    Liveness,
    liveness,
    reap_zombies,
    supervisor_identity,
    this_host,
)
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import isoformat, utcnow
from oxi_core.tasks import Task, TaskStatus
from tests.conftest import roadmap
from tests.unattended.support import alive, ledger_of, run_oxi, wait_for

HOUR_AGO = timedelta(hours=2)


class Sleepers:
    """Real processes standing in for workers and supervisors; all killed at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *, session: bool = True) -> tuple[int, float]:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                stdin=subprocess.DEVNULL, start_new_session=session)
        self.procs.append(proc)
        return proc.pid, psutil.Process(proc.pid).create_time()

    def dead_pid(self) -> tuple[int, float]:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        started = psutil.Process(proc.pid).create_time()
        proc.wait()
        return proc.pid, started


@pytest.fixture
def sleepers() -> Iterator[Sleepers]:
    found = Sleepers()
    yield found
    for proc in found.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def dispatched(task_id: str, *, heartbeat_age: timedelta, **fields: object) -> Task:
    return Task(id=task_id, tier=1, title=f"item {task_id}", status=TaskStatus.DISPATCHED,
                attempts=1, last_progress_at=isoformat(utcnow() - heartbeat_age),
                worker_host=this_host(), **fields)  # type: ignore[arg-type]


def insert(ledger: Ledger, task: Task) -> None:
    ledger.insert_task(task, event_type=ev.TASK_CLAIMED, payload={"test": "planted"})


def test_a_live_worker_with_an_old_heartbeat_is_never_reaped_by_a_real_tick(
    repo_factory, sleepers: Sleepers
) -> None:
    repo = repo_factory(roadmap(("T1-5", "long thinker", "n"), ("T1-6", "crashed", "n")))
    worker_pid, worker_started = sleepers.start()
    supervisor_pid, supervisor_started = sleepers.start()
    dead_worker, dead_started = sleepers.dead_pid()
    dead_supervisor, dead_supervisor_started = sleepers.dead_pid()
    with ledger_of(repo) as ledger:
        insert(ledger, dispatched(
            "T1-5", heartbeat_age=HOUR_AGO, worker_pid=worker_pid, worker_pgid=worker_pid,
            worker_started_at=worker_started, supervisor_pid=supervisor_pid,
            supervisor_started_at=supervisor_started))
        insert(ledger, dispatched(
            "T1-6", heartbeat_age=HOUR_AGO, worker_pid=dead_worker, worker_pgid=dead_worker,
            worker_started_at=dead_started, supervisor_pid=dead_supervisor,
            supervisor_started_at=dead_supervisor_started))
    assert run_oxi(["pause"], cwd=repo.root).returncode == 0
    result = run_oxi(["tick", "--json"], cwd=repo.root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["tick"]
    assert report["reaped"] == [{"task": "T1-6", "liveness": "zombie"}]
    with ledger_of(repo) as ledger:
        live = ledger.task("T1-5")
        assert live is not None and live.status is TaskStatus.DISPATCHED
        assert live.worker_pid == worker_pid
        dead = ledger.task("T1-6")
        assert dead is not None and dead.status is TaskStatus.PLANNED
        assert [e.task_id for e in ledger.events(types=[ev.ZOMBIE_REAPED])] == ["T1-6"]
        assert ledger.events(types=[ev.ORPHAN_KILLED]) == []
    assert alive(worker_pid) and alive(supervisor_pid)


def test_liveness_decisions_with_real_processes(sleepers: Sleepers) -> None:
    now = utcnow()
    worker, worker_started = sleepers.start()
    supervisor, supervisor_started = sleepers.start()
    dead_supervisor, dead_supervisor_started = sleepers.dead_pid()
    live_pair = {"worker_pid": worker, "worker_pgid": worker,
                 "worker_started_at": worker_started, "supervisor_pid": supervisor,
                 "supervisor_started_at": supervisor_started}

    def decide(task: Task) -> Liveness:
        return liveness(task, now=now, timeout_s=1800)

    # Live, however stale the heartbeat.
    assert decide(dispatched("T1-5", heartbeat_age=timedelta(days=3), **live_pair)) is (
        Liveness.LIVE)
    # Claimed, agent not started yet (worktree, hooks): its live supervisor will record the
    # result, however stale the heartbeat.
    claimed = {"supervisor_pid": supervisor, "supervisor_started_at": supervisor_started}
    assert decide(dispatched("T1-5", heartbeat_age=timedelta(0), **claimed)) is Liveness.LIVE
    assert decide(dispatched("T1-5", heartbeat_age=HOUR_AGO, **claimed)) is Liveness.LIVE
    # A dead supervisor: nobody will, fresh heartbeat or not.
    gone = {"supervisor_pid": dead_supervisor, "supervisor_started_at": dead_supervisor_started}
    assert decide(dispatched("T1-5", heartbeat_age=timedelta(0), **gone)) is Liveness.ZOMBIE
    # The worker's pid now runs another process (started at another time): not the worker.
    reused = {**live_pair, "worker_started_at": worker_started - 100, **gone}
    assert decide(dispatched("T1-5", heartbeat_age=HOUR_AGO, **reused)) is Liveness.ZOMBIE
    # The supervisor died: nobody will record the live worker's result.
    orphaned = {**live_pair, "supervisor_pid": dead_supervisor,
                "supervisor_started_at": dead_supervisor_started}
    assert decide(dispatched("T1-5", heartbeat_age=timedelta(0), **orphaned)) is (
        Liveness.ORPHAN)
    # A supervisor pid reused by a live process is not the supervisor.
    impostor = {**live_pair, "supervisor_started_at": supervisor_started - 100}
    assert decide(dispatched("T1-5", heartbeat_age=timedelta(0), **impostor)) is (
        Liveness.ORPHAN)


def test_a_reused_worker_pid_is_reaped_but_its_new_owner_is_not_killed(
    repo_factory, sleepers: Sleepers
) -> None:
    repo = repo_factory(roadmap(("T1-5", "x", "y")))
    stranger, stranger_started = sleepers.start()  # a session leader, like any agent
    supervisor, supervisor_started = sleepers.dead_pid()  # the crashed supervisor
    with ledger_of(repo) as ledger:
        insert(ledger, dispatched(
            "T1-5", heartbeat_age=HOUR_AGO, worker_pid=stranger, worker_pgid=stranger,
            worker_started_at=stranger_started - 100, supervisor_pid=supervisor,
            supervisor_started_at=supervisor_started))
        reaped = reap_zombies(ledger, now=utcnow(), timeout_s=1800)
        assert [(r.task_id, r.liveness, r.killed_group) for r in reaped] == [
            ("T1-5", Liveness.ZOMBIE, None)]
        assert ledger.events(types=[ev.ORPHAN_KILLED]) == []
    assert alive(stranger)


def test_another_hosts_claim_lives_by_its_lease_alone(repo_factory, sleepers: Sleepers) -> None:
    repo = repo_factory(roadmap(("T1-5", "fresh", "y"), ("T1-6", "stale", "y")))
    # Its pid and group name a live process here, which is not that host's worker.
    local, local_started = sleepers.start()
    elsewhere = {"worker_host": "another-host", "worker_pid": local, "worker_pgid": local,
                 "worker_started_at": local_started + 5, "supervisor_pid": local,
                 "supervisor_started_at": local_started + 5}
    with ledger_of(repo) as ledger:
        fresh = attrs_evolve(dispatched("T1-5", heartbeat_age=timedelta(minutes=1)), elsewhere)
        stale = attrs_evolve(dispatched("T1-6", heartbeat_age=HOUR_AGO), elsewhere)
        insert(ledger, fresh)
        insert(ledger, stale)
        assert liveness(fresh, now=utcnow(), timeout_s=1800) is Liveness.LIVE
        reaped = reap_zombies(ledger, now=utcnow(), timeout_s=1800)
        assert [(r.task_id, r.liveness, r.killed_group) for r in reaped] == [
            ("T1-6", Liveness.LEASE_EXPIRED, None)]
        assert ledger.task("T1-5").status is TaskStatus.DISPATCHED  # type: ignore[union-attr]
        after = ledger.task("T1-6")
        assert after is not None and after.status is TaskStatus.PLANNED
        assert after.worker_host is None and after.worker_pid is None
        (event,) = ledger.events(types=[ev.ZOMBIE_REAPED])
        assert event.payload["reason"] == "lease_expired"
        assert event.payload["worker_host"] == "another-host"
    assert alive(local)  # another host's pids are never signalled here


def attrs_evolve(task: Task, changes: dict[str, object]) -> Task:
    import attrs

    return attrs.evolve(task, **changes)  # type: ignore[arg-type]


def test_the_reaper_keeps_its_hands_off_its_own_workers(repo_factory) -> None:
    """A dispatched task of this engine with no pid yet and an old lease is skipped while the
    engine's own worker coroutine runs (``skip``)."""
    repo = repo_factory(roadmap(("T1-5", "x", "y")))
    with ledger_of(repo) as ledger:
        insert(ledger, dispatched("T1-5", heartbeat_age=HOUR_AGO, supervisor_pid=os.getpid()))
        assert reap_zombies(ledger, now=utcnow(), timeout_s=1800,
                            skip=frozenset({"T1-5"})) == []
        assert ledger.task("T1-5").status is TaskStatus.DISPATCHED  # type: ignore[union-attr]


# -- issue 9.1: a claim whose supervisor lives is never reaped -----------------------------------

SLOW_HOOK = ('\n[worktree.hooks]\nafter_create = {{ argv = ["sh", "-c", '
             '"touch {marker}; sleep {seconds}"], timeout_s = {timeout} }}\n')


def test_a_worker_in_its_after_create_hook_is_not_reaped_by_a_second_tick_whatever_its_heartbeat(
    repo_factory, oxi, tmp_path
) -> None:
    # Seen in fault injection: the hook outlived the heartbeat, a second `oxi tick` reaped the
    # task as a zombie, claimed it again and ran a second agent; the first worker then died on
    # its vanished worktree. The supervisor is alive: it will record the result.
    marker = tmp_path / "hook-started"
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False,
                        engine={"heartbeat_timeout_s": 1200, "stall_timeout_s": 30},
                        extra_toml=SLOW_HOOK.format(marker=marker, seconds=6, timeout=60))
    first = oxi.start(["tick", "--json"], repo)
    wait_for(marker.exists, timeout=60, what="the after_create hook to start")
    with ledger_of(repo) as ledger:  # the heartbeat stopped an hour ago, as far as anyone can see
        ledger.update_task("T1-5", event_type=None,
                           last_progress_at=isoformat(utcnow() - timedelta(hours=1)))
    second = run_oxi(["tick", "--json"], cwd=repo.root)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)["tick"]
    assert report["reaped"] == [] and report["dispatched"] == []
    assert first.wait(timeout=90) == 0, first.stderr
    with ledger_of(repo) as ledger:
        assert ledger.events(types=[ev.ZOMBIE_REAPED]) == []
        assert len(ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-5")) == 1
        assert len(ledger.events(types=[ev.WORKER_STARTED], task_id="T1-5")) == 1
        assert ledger.events(types=[ev.DISPATCH_ERROR]) == []
        task = ledger.task("T1-5")
        assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error


def test_heartbeats_continue_while_the_worktree_hooks_run(repo_factory, oxi, tmp_path) -> None:
    marker = tmp_path / "hook-started"
    # heartbeat_timeout_s 24: twice the longest legal silence (the hook's 12 s timeout); a
    # beat every 3 s (an eighth of it).
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False,
                        engine={"heartbeat_timeout_s": 24, "stall_timeout_s": 5,
                                "startup_timeout_s": 5},
                        extra_toml=SLOW_HOOK.format(marker=marker, seconds=9, timeout=12))
    first = oxi.start(["tick"], repo)
    wait_for(marker.exists, timeout=60, what="the after_create hook to start")

    def progress() -> str | None:
        with ledger_of(repo) as ledger:
            task = ledger.task("T1-5")
        return task.last_progress_at if task is not None else None

    seen = [progress()]
    for _ in range(2):  # two beats while the hook sleeps (no agent has started yet)
        seen.append(wait_for(lambda: progress() not in seen and progress(), timeout=8,
                             what="a heartbeat during the hook"))
    with ledger_of(repo) as ledger:
        assert ledger.events(types=[ev.WORKER_STARTED]) == []
        task = ledger.task("T1-5")
        assert task is not None and task.last_event == "hook:after_create"
    assert first.wait(timeout=90) == 0, first.stderr


def test_a_claim_of_this_engine_that_none_of_its_workers_runs_is_reaped(repo_factory) -> None:
    # The supervisor is alive (it is this process), but no worker of its own runs the task: a
    # claim it lost track of is dead, not live forever.
    repo = repo_factory(roadmap(("T1-5", "x", "y")))
    me, my_start = supervisor_identity()
    with ledger_of(repo) as ledger:
        insert(ledger, dispatched("T1-5", heartbeat_age=timedelta(0), supervisor_pid=me,
                                  supervisor_started_at=my_start))
        mine = ledger.task("T1-5")
        assert mine is not None
        assert liveness(mine, now=utcnow(), timeout_s=1800) is Liveness.LIVE
        assert reap_zombies(ledger, now=utcnow(), timeout_s=1800, own=(me, my_start),
                            skip=frozenset({"T1-5"})) == []
        reaped = reap_zombies(ledger, now=utcnow(), timeout_s=1800, own=(me, my_start))
        assert [(r.task_id, r.liveness) for r in reaped] == [("T1-5", Liveness.ZOMBIE)]
