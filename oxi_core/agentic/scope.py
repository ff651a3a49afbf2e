"""Every process a run started, wherever it went, so that none outlives its task.

A process group is not enough: `setsid cmd &`, a `set -m` job or a daemon leave it, and the
parent-death signal reaches only the run's first process. So each run gets a *scope*: a marker
in its environment, ``OXI_PROCESS_SCOPE=<base>/<run>``, which every process it starts inherits
unless it clears its environment on purpose. The members of a scope are the processes carrying
the marker, plus what is left of the run's process group.

Where the host lets oxi make cgroups (cgroup v2, oxi_core.agentic.cgroup), each run also gets
a cgroup named after its scope, which the run's first process joins before it execs: what clears
its environment (`env -i`) is still in it, and ending the scope kills the cgroup too. The marker
stays for hosts without one (and for systems other than Linux).

The base names the task's claim (task id, attempt, supervisor pid and start time) while an
engine worker runs, so a later engine finds what a killed supervisor's runs left behind (the
reaper); each run (an agent, a hook, a check) adds its own suffix, so ending one never touches
another (a shadow agent runs beside its primary).

Linux reads ``/proc/PID/environ`` directly (a few milliseconds for a host's processes); other
systems ask psutil for each process's environment, which is slower and may be refused for
processes of other users (those are not the operator's agents anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from oxi_core.agentic import cgroup

if TYPE_CHECKING:
    import psutil

SCOPE_VAR = "OXI_PROCESS_SCOPE"
KILL_GRACE_S = 3.0
_PROC = Path("/proc")

# The claim whose runs this context starts (set by the engine's worker for its asyncio task;
# asyncio.to_thread carries it into hooks and checks).
_claim_scope: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "oxi_claim_scope", default=None)


def claim_scope(task_id: str, attempt: int, supervisor_pid: int | None,
                supervisor_started_at: float | None) -> str:
    """The scope base of one claim of a task: the same for the worker and for the reaper."""
    started = round((supervisor_started_at or 0.0) * 100)
    return f"{task_id}.{attempt}.{supervisor_pid or 0}.{started}"


def enter_claim_scope(base: str) -> None:
    """Runs started from this context from now on belong to the claim ``base``."""
    _claim_scope.set(base)


def new_run_scope() -> str:
    """A scope for one run: the current claim's base (or this process's) and a fresh suffix."""
    base = _claim_scope.get() or f"run.{os.getpid()}"
    return f"{base}/{uuid.uuid4().hex[:12]}"


def scoped_env(env: Mapping[str, str], scope: str) -> dict[str, str]:
    return {**env, SCOPE_VAR: scope}


def run_cgroup(scope: str) -> Path | None:
    """The new cgroup of run ``scope``, for its first process to join (``cgroup.joiner``)
    before it execs; None where the host offers none (the marker and the group remain)."""
    return cgroup.make_run_cgroup(scope)


def discard_cgroup(path: Path | None) -> None:
    """Remove the cgroup of a run that never started."""
    if path is not None:
        cgroup.remove(path, timeout_s=0.0)


def _scope_of_linux(pid: int) -> str | None:
    try:
        data = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or another user's
        return None
    needle = SCOPE_VAR.encode() + b"="
    for entry in data.split(b"\0"):
        if entry.startswith(needle):
            return entry[len(needle):].decode("utf-8", "replace")
    return None


def _scope_of_psutil(pid: int) -> str | None:
    import psutil

    try:
        return psutil.Process(pid).environ().get(SCOPE_VAR)
    except (psutil.Error, OSError):
        return None


def _pids() -> list[int]:
    if sys.platform == "linux" and _PROC.is_dir():
        return [int(name) for name in os.listdir(_PROC) if name.isdigit()]
    import psutil

    return psutil.pids()


def scope_members(scope: str, *, prefix: bool = False, pgid: int | None = None,
                  cgroups: Iterable[Path] = ()) -> list[psutil.Process]:
    """Live processes in ``scope`` (with ``prefix``: in any run of the claim ``scope``), the
    live members of process group ``pgid`` and of the cgroups ``cgroups``; never this
    process."""
    import psutil

    in_cgroups = cgroup.members(cgroups)
    read = _scope_of_linux if sys.platform == "linux" and _PROC.is_dir() else _scope_of_psutil
    me = os.getpid()
    found: dict[int, psutil.Process] = {}
    for pid in _pids():
        if pid == me:
            continue
        value = read(pid)
        in_scope = pid in in_cgroups or (value is not None and (
            value == scope or (prefix and value.startswith(scope + "/"))))
        in_group = False
        if not in_scope and pgid is not None:
            with contextlib.suppress(OSError):
                in_group = os.getpgid(pid) == pgid
        if not (in_scope or in_group):
            continue
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                found[pid] = process
        except psutil.Error:
            continue
    return list(found.values())


def _signal(processes: Iterable[psutil.Process], pgid: int | None, signum: int) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error, OSError):
            process.send_signal(signum)  # psutil checks the pid still names this process
    if pgid is not None:  # also what joined the group since the scan
        with contextlib.suppress(OSError):
            os.killpg(pgid, signum)


def _alive(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    import psutil

    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.Error:
            continue
    return alive


# A dying member may start more; each round finds what the last one missed.
END_ROUNDS = 3


def end_scope(scope: str, *, pgid: int | None = None, prefix: bool = False,
              grace_s: float = KILL_GRACE_S) -> list[int]:
    """Stop every process left in ``scope`` (in its cgroups, and in group ``pgid``):
    SIGTERM, up to ``grace_s`` to go, then SIGKILL; then kill and remove the scope's cgroups
    (which nothing can have left). Returns the pids found."""
    cgroups = cgroup.scope_cgroups(scope, prefix=prefix)
    found: set[int] = set()
    for _ in range(END_ROUNDS):
        members = scope_members(scope, prefix=prefix, pgid=pgid, cgroups=cgroups)
        if not members:
            break
        found.update(process.pid for process in members)
        _signal(members, pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while (left := _alive(members)) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal(left, pgid, signal.SIGKILL)
    if cgroups:  # what a dying member started after the last scan
        found.update(cgroup.members(cgroups))
        cgroup.end(cgroups)
    return sorted(found)


async def end_scope_async(scope: str, *, pgid: int | None = None,
                          grace_s: float = KILL_GRACE_S) -> list[int]:
    """:func:`end_scope` off the event loop."""
    return await asyncio.to_thread(end_scope, scope, pgid=pgid, grace_s=grace_s)


def run_scoped(argv: list[str], *, cwd: Path, env: Mapping[str, str],
               timeout_s: float) -> tuple[int | None, str]:
    """Run a command (a hook, a check) to its end in its own session and scope, its output
    merged: (exit code, or None on timeout; output). Nothing it started outlives it, and a
    background process still holding its output does not keep it waiting. Raises OSError when
    it cannot start."""
    import threading

    scope = new_run_scope()
    own_cgroup = run_cgroup(scope)
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=scoped_env(env, scope), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True,
            preexec_fn=cgroup.joiner(own_cgroup) if own_cgroup is not None else None,
        )
    except OSError:
        discard_cgroup(own_cgroup)
        raise
    assert proc.stdout is not None
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(proc.stdout or ()), daemon=True)
    reader.start()
    code: int | None
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        code = None
    end_scope(scope, pgid=proc.pid, grace_s=KILL_GRACE_S if code is None else 1.0)
    proc.wait()
    reader.join()
    proc.stdout.close()
    return code, "".join(chunks)
