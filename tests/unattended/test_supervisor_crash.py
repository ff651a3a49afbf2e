"""T0-105: a supervisor killed with SIGKILL mid-run leaves an orphan; the restart kills it
before re-dispatching the task exactly once. T0-106: nor does a process that cleared its
environment (`env -i`) outlive its run or its supervisor, where runs get a cgroup."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from oxi_core.agentic import cgroup
from oxi_core.engine.reaper import Liveness
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing.repos import exec_agent_toml
from tests.conftest import CHECK_ANSWERS, SCRIPTED_AGENT, roadmap
from tests.unattended.support import (
    alive,
    assert_ledger_consistent,
    events_of,
    ledger_of,
    origin_lines,
    wait_for,
)


@pytest.mark.parametrize("ignores_term", [True, False], ids=["agent-ignores-sigterm",
                                                              "agent-dies-with-supervisor"])
def test_sigkilled_supervisor_orphan_is_killed_and_the_task_redispatched_once(
    repo_factory, oxi, ignores_term: bool
) -> None:
    # The agent starts a child in its process group. When the agent ignores SIGTERM, the
    # parent-death signal does not take it with the supervisor and both are the orphan to
    # reap; otherwise the agent dies with its supervisor and its child is left behind.
    long_run = {"AGENT_SLEEP": "60", "AGENT_CHILD": "1", "AGENT_PID_DIR": str(oxi.pid_dir),
                "AGENT_WRITE_FIRST": "1", "AGENT_IGNORE_TERM": "1" if ignores_term else "0"}
    repo = repo_factory(roadmap(("T1-5", "a long run", "writes notes/T1-5.txt")),
                        agent_env=long_run)
    first = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    (started,) = wait_for(lambda: events_of(repo, ev.WORKER_STARTED), timeout=120,
                          what="the agent to start")
    child_file = oxi.pid_dir / "T1-5.child"
    wait_for(lambda: child_file.exists() and child_file.read_text(), timeout=120,
             what="the agent's child")
    agent_pid, pgid = started.payload["pid"], started.payload["pgid"]
    child_pid = int(child_file.read_text())
    with ledger_of(repo) as ledger:
        task = ledger.task("T1-5")
    assert task is not None and task.worker_pid == agent_pid and task.worker_pgid == pgid
    assert task.worker_started_at == psutil.Process(agent_pid).create_time()
    assert task.supervisor_pid == first.pid

    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    if not ignores_term:  # the parent-death signal (SIGTERM) ends it, when the host gets to it
        wait_for(lambda: not alive(agent_pid), timeout=60, what="the agent to die")
    else:
        time.sleep(0.5)
        assert alive(agent_pid)
    assert alive(child_pid)  # a grandchild gets no parent-death signal
    assert (repo.root / ".oxi" / "saturate.pid").exists()  # stale: its pid is dead

    # The restart runs a short agent (the config is edited while nothing runs).
    repo.config.write_text(exec_agent_toml(
        SCRIPTED_AGENT, critic=CHECK_ANSWERS,
        engine={"retry_base_s": 0.05, "retry_max_s": 0.2}, agent_env={"AGENT_SLEEP": "0.2"}))
    second = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    # Killed by the restart's first tick, not when the claim's lease runs out (30 minutes by
    # default); the wait is generous for a loaded host, and the ledger shows the order below.
    wait_for(lambda: not alive(agent_pid) and not alive(child_pid), timeout=120,
             what="the orphaned agent and its child to be killed")

    def merged() -> bool:
        with ledger_of(repo) as ledger:
            found = ledger.task("T1-5")
        return found is not None and found.status is TaskStatus.MERGED

    wait_for(merged, timeout=120, what="the re-dispatched task to merge")
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.stderr
    assert not (repo.root / ".oxi" / "saturate.pid").exists()

    with ledger_of(repo) as ledger:
        (killed,) = ledger.events(types=[ev.ORPHAN_KILLED])
        assert killed.payload["pgid"] == pgid
        assert set(killed.payload["killed"]) == (
            {agent_pid, child_pid} if ignores_term else {child_pid})
        (reaped,) = ledger.events(types=[ev.ZOMBIE_REAPED])
        assert reaped.payload["reason"] == (Liveness.ORPHAN if ignores_term else Liveness.ZOMBIE)
        assert reaped.payload["supervisor_pid"] == first.pid
        claims = ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-5")
        assert len(claims) == 2  # the first run, and exactly one re-dispatch
        assert claims[0].id < killed.id < reaped.id < claims[1].id
        assert claims[1].payload["supervisor_pid"] == second.pid
        assert ledger.query("SELECT count(*) FROM pull_requests") == [(1,)]
        (started_event,) = ledger.events(types=[ev.SATURATE_STARTED], after_id=claims[0].id)
        assert started_event.payload["took_over_stale_pid_file"]["pid"] == first.pid
        # One result (the second run's); the killed run recorded none and cost nothing.
        results = ledger.events(types=[ev.DISPATCH_RESULT], task_id="T1-5")
        assert [r.payload["attempt"] for r in results] == [2]
        task = ledger.task("T1-5")
        assert task is not None and task.attempts == 2
        assert task.worker_pid is None and task.supervisor_pid is None
        assert_ledger_consistent(ledger)
        # The re-dispatch reused the worktree, keeping what the orphan wrote before it died
        # (work is never thrown away); the re-run added its own line to it.
        reused = ledger.events(types=[ev.WORKTREE_REUSED], task_id="T1-5")
        assert len(reused) == 1 and reused[0].id > claims[1].id
    assert origin_lines(repo, "notes/T1-5.txt") == ["T1-5 was here", "T1-5 was here"]


ESCAPING_AGENT = """#!/bin/bash
# A worker whose shell leaves the process group twice, then works on.
if [ "$LEAVE_THE_GROUP" = 1 ]; then
    setsid sleep 306 &
    echo $! > "$PID_DIR/setsid.pid"
    set -m
    sleep 307 &
    echo $! > "$PID_DIR/job.pid"
    set +m
fi
if [ "$CLEAR_THE_ENVIRONMENT" = 1 ]; then
    # No marker and no group: only the run's cgroup holds it ($! is env, then setsid, then
    # sleep: one process, as the shell is not its group's leader).
    env -i setsid sleep 308 &
    echo $! > "$PID_DIR/cleared.pid"
fi
mkdir -p notes && echo "$OXI_TASK_ID was here" >> "notes/$OXI_TASK_ID.txt"
echo "working"
sleep "${WORK_S:-0}"
"""


def scope_kind(kind: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """oxi's environment for ``kind``, and the escapees an agent starts that it must stop."""
    if kind == "marker only":
        return {cgroup.DISABLE_VAR: "1"}, ("setsid.pid", "job.pid")
    host = cgroup.subtree()
    if host.path is None:
        pytest.skip(f"no writable cgroup v2 here: {host.reason}")
    return {}, ("setsid.pid", "job.pid", "cleared.pid")


def escaping_agent(tmp_path: Path) -> tuple[Path, Path]:
    agent = tmp_path / "agent.sh"
    agent.write_text(ESCAPING_AGENT)
    agent.chmod(0o755)
    pid_dir = tmp_path / "escapees"
    pid_dir.mkdir()
    return agent, pid_dir


def kill_survivors(pids: list[int]) -> None:
    for pid in pids:  # never leave them behind, even when the test fails
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("kind", ["cgroup", "marker only"])
def test_nothing_an_agent_started_outlives_its_run(
    repo_factory, oxi, tmp_path, kind: str
) -> None:
    env, names = scope_kind(kind)
    agent, pid_dir = escaping_agent(tmp_path)
    repo = repo_factory(roadmap(("T1-5", "escapes", "n")), critic=False)
    repo.config.write_text(exec_agent_toml([str(agent)], agent_env={
        "PID_DIR": str(pid_dir), "LEAVE_THE_GROUP": "1",
        "CLEAR_THE_ENVIRONMENT": "1" if "cleared.pid" in names else "0"}))
    escapees: list[int] = []
    try:
        tick = oxi.start(["tick"], repo, env=env)
        assert tick.wait(timeout=120) == 0, tick.stderr
        escapees = [int((pid_dir / name).read_text()) for name in names]
        assert [pid for pid in escapees if alive(pid)] == []
        with ledger_of(repo) as ledger:
            task = ledger.task("T1-5")
            assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error
        host = cgroup.subtree()
        if kind == "cgroup" and host.path is not None:  # and its cgroups are removed
            assert list(host.path.glob(f"oxi-T1-5.1.{tick.pid}.*")) == []
    finally:
        kill_survivors(escapees)


@pytest.mark.parametrize("kind", ["cgroup", "marker only"])
def test_processes_that_left_the_agents_group_do_not_outlive_a_supervisor_crash(
    repo_factory, oxi, tmp_path, kind: str
) -> None:
    # Seen in fault injection: `setsid sleep &` and a `set -m` job inside an agent were still
    # running after the supervisor was SIGKILLed and the next tick reaped the task. With a
    # cgroup per run, a process that cleared its environment does not survive either.
    env, names = scope_kind(kind)
    agent, pid_dir = escaping_agent(tmp_path)
    repo = repo_factory(roadmap(("T1-5", "escapes", "n")), critic=False)

    def configure(agent_env: dict[str, str]) -> None:
        repo.config.write_text(exec_agent_toml(
            [str(agent)], engine={"retry_base_s": 0.05, "retry_max_s": 0.2},
            agent_env={"PID_DIR": str(pid_dir), **agent_env}))

    configure({"LEAVE_THE_GROUP": "1", "WORK_S": "60",
               "CLEAR_THE_ENVIRONMENT": "1" if "cleared.pid" in names else "0"})
    escapees: list[int] = []
    try:
        first = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo, env=env)
        last = pid_dir / names[-1]
        wait_for(lambda: last.exists() and last.read_text(), timeout=60,
                 what="the agent's escapees")
        escapees = [int((pid_dir / name).read_text()) for name in names]
        agents_group = events_of(repo, ev.WORKER_STARTED)[0].payload["pgid"]
        for pid in escapees:  # none is in the agent's group (once `setsid` has run: $! is
            # the forked child, which leaves the group only when its setsid() call happens)
            wait_for(lambda pid=pid: os.getpgid(pid) != agents_group, timeout=30,
                     what=f"process {pid} leaving the agent's group")
        first.signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
        time.sleep(0.5)
        assert all(alive(pid) for pid in escapees)  # no parent-death signal reaches them

        configure({"WORK_S": "0"})  # the restart's run is short and leaves nothing
        second = oxi.start(["tick"], repo, env=env)
        assert second.wait(timeout=120) == 0, second.stderr
        assert [pid for pid in escapees if alive(pid)] == []
        with ledger_of(repo) as ledger:
            (killed,) = ledger.events(types=[ev.ORPHAN_KILLED])
            assert set(escapees) <= set(killed.payload["killed"])
            task = ledger.task("T1-5")
            assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error
        host = cgroup.subtree()
        if kind == "cgroup" and host.path is not None:  # the crashed claim's cgroup is gone
            assert list(host.path.glob(f"oxi-T1-5.1.{first.pid}.*")) == []
    finally:
        kill_survivors(escapees)
