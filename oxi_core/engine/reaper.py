"""The heartbeat reaper: dispatched tasks whose worker is gone go back to planned.

``liveness`` is the one place that decides whether a dispatched task's worker is alive. A
claim records its host and its supervisor's pid and start time; the agent's pid, process group
and start time follow once it runs. A pid is only "the same process" when its start time
matches too, so a reused pid is never mistaken for the worker.

On this host the supervisor decides: while it lives, it will record the task's result, so the
claim is live however old its heartbeat (it may be creating the worktree, running a slow hook,
or waiting on a silent agent). Only the supervisor itself knows when a claim of its own has no
worker any more. On another host's claim only the heartbeat lease counts; the worker renews it
throughout (through worktree creation and hooks too), and `heartbeat_timeout_s` must stay well
above the longest silence a live worker is allowed (config.check_heartbeat).
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import attrs

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import parse_ts
from oxi_core.tasks import Task, TaskStatus

START_TIME_TOLERANCE_S = 0.05
# SIGTERM to SIGKILL for an orphan: its work is discarded, and the tick waits for it.
ORPHAN_KILL_GRACE_S = 1.0


class Liveness(enum.StrEnum):
    LIVE = "live"
    ZOMBIE = "zombie"  # worker gone and nobody will record its result
    ORPHAN = "orphan"  # worker alive but its supervisor died: nobody will record its result
    LEASE_EXPIRED = "lease_expired"  # another host's claim whose heartbeat stopped


@cache
def this_host() -> str:
    return socket.gethostname()


def process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def same_process_alive(pid: int | None, started_at: float | None) -> bool:
    """True only if ``pid`` runs now *and* started when we recorded it did."""
    if not pid or started_at is None:
        return False
    current = process_start_time(pid)
    if current is None:
        return False
    if abs(current - started_at) > START_TIME_TOLERANCE_S:
        return False
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def heartbeat_stale(task: Task, now: datetime, timeout_s: float) -> bool:
    if task.last_progress_at is None:
        return True
    return parse_ts(task.last_progress_at) < now - timedelta(seconds=timeout_s)


Supervisor = tuple[int, float | None]  # (pid, start time) of a supervising process


def liveness(
    task: Task, *, now: datetime, timeout_s: float, host: str | None = None,
    own: Supervisor | None = None, running: frozenset[str] = frozenset(),
) -> Liveness:
    """Whether ``task``'s claim is live. ``own``: the calling supervisor, whose own claims are
    live only while one of its workers (``running``) runs them."""
    host = host or this_host()
    if task.worker_host and task.worker_host != host:
        stale = heartbeat_stale(task, now, timeout_s)
        return Liveness.LEASE_EXPIRED if stale else Liveness.LIVE
    worker_alive = same_process_alive(task.worker_pid, task.worker_started_at)
    if same_process_alive(task.supervisor_pid, task.supervisor_started_at):
        mine = own is not None and own == (task.supervisor_pid, task.supervisor_started_at)
        if not mine or task.id in running:
            return Liveness.LIVE  # its supervisor will record it, however old its heartbeat
    return Liveness.ORPHAN if worker_alive else Liveness.ZOMBIE


def orphaned_group_members(task: Task) -> list[int]:
    """Live processes of the worker's process group that started no earlier than the worker.

    The leader may be gone (a parent-death signal took it) while its children live on. The
    kernel does not reuse a pid while a process group of that id exists, so a group with the
    worker's id is ours unless a live leader of it started at another time than the worker:
    then the id was reused by a stranger's new session, and nothing is ours to kill.
    """
    if not task.worker_pgid or task.worker_started_at is None:
        return []
    import psutil

    leader_started = (process_start_time(task.worker_pgid)
                      if task.worker_pid == task.worker_pgid else None)
    if leader_started is not None and (
        abs(leader_started - task.worker_started_at) > START_TIME_TOLERANCE_S
    ):
        # The group's id now names another process's group: the worker's pid (its group id)
        # was reused by a new session leader. While any member of the worker's own group
        # lived, the kernel could not have reused that id, so nothing of ours is left.
        return []
    members: list[int] = []
    for process in psutil.process_iter(["pid", "create_time"]):
        try:
            if os.getpgid(process.pid) != task.worker_pgid:
                continue
            if os.getsid(process.pid) != task.worker_pgid:
                continue
            if process.info["create_time"] + START_TIME_TOLERANCE_S < task.worker_started_at:
                continue
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
        members.append(process.pid)
    return members


Triage = Callable[[Task], str | None]

WORKER_FIELDS_CLEARED: dict[str, Any] = {
    "worker_pid": None, "worker_pgid": None, "worker_started_at": None,
    "supervisor_pid": None, "supervisor_started_at": None, "worker_host": None,
}


@attrs.frozen
class Reaped:
    task_id: str
    liveness: Liveness
    killed_group: int | None = None


def reap_zombies(
    ledger: Ledger, *, now: datetime, timeout_s: float, host: str | None = None,
    triage: Triage | None = None, skip: frozenset[str] = frozenset(),
    own: Supervisor | None = None,
) -> list[Reaped]:
    """Return dead dispatched tasks to planned (killing orphaned workers first). ``skip``: the
    tasks the caller's own workers run; ``own``: the caller's identity as a supervisor."""
    from oxi_core.agentic.scope import claim_scope, end_scope  # asyncio: only when reaping

    reaped: list[Reaped] = []
    for task in ledger.tasks([TaskStatus.DISPATCHED]):
        if task.id in skip:
            continue
        state = liveness(task, now=now, timeout_s=timeout_s, host=host, own=own, running=skip)
        if state is Liveness.LIVE:
            continue
        killed = None
        if state in (Liveness.ORPHAN, Liveness.ZOMBIE) and (
            not task.worker_host or task.worker_host == (host or this_host())
        ):
            # Nobody will record this work: stop whatever the claim's runs left, in the
            # worker's group or out of it (setsid, `set -m` jobs). A short grace: nothing of
            # it is kept, and the tick waits meanwhile.
            group = task.worker_pgid if orphaned_group_members(task) else None
            left = end_scope(claim_scope(task.id, task.attempts, task.supervisor_pid,
                                         task.supervisor_started_at),
                             prefix=True, pgid=group, grace_s=ORPHAN_KILL_GRACE_S)
            if left:
                killed = task.worker_pgid
                ledger.append(ev.ORPHAN_KILLED, task_id=task.id, payload={
                    "pgid": task.worker_pgid, "pid": task.worker_pid, "killed": left})
        summary = triage(task) if triage is not None else None
        payload: dict[str, object] = {
            "reason": str(state),
            "worker_pid": task.worker_pid,
            "worker_host": task.worker_host,
            "supervisor_pid": task.supervisor_pid,
            "last_progress_at": task.last_progress_at,
        }
        if summary:
            payload["triage_summary"] = summary
        moved = ledger.transition(
            task.id, TaskStatus.PLANNED, event_type=ev.ZOMBIE_REAPED, payload=payload,
            expect=[TaskStatus.DISPATCHED], **WORKER_FIELDS_CLEARED,
        )
        if moved is not None:
            reaped.append(Reaped(task.id, state, killed))
    return reaped


def supervisor_identity() -> Supervisor:
    pid = os.getpid()
    return pid, process_start_time(pid)
