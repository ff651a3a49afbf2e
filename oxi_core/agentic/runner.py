"""The one subprocess runner every agent plugin uses.

argv only (never a shell), its own process group and scope (oxi_core.agentic.scope: its cgroup,
where the host offers one, joined before the first process execs, and an environment marker), an
allow-listed environment, stdin closed, stdout and stderr drained concurrently with a bounded
line length, a wall-clock timeout and an idle (stall) timeout that terminate and then kill
everything the run started. Until its first line a CLI is starting (loading, reading its
configuration), not stalled: that silence is measured against a start-up allowance of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import attrs

from oxi_core.agentic import cgroup
from oxi_core.agentic.scope import (
    KILL_GRACE_S,
    discard_cgroup,
    end_scope_async,
    new_run_scope,
    run_cgroup,
    scoped_env,
)

VERSION_TIMEOUT_S = 30.0
_VERSION = re.compile(r"\d+\.\d+\.\d+")
LINE_LIMIT = 1 << 20  # 1 MB: a longer line is a failure, never unbounded memory
DRAIN_GRACE_S = 2.0
# The agent's stdout pipe holds this much (Linux's largest for an unprivileged process; 64 KB
# by default). A CLI that prints a long line and exits at once (Node's process.exit drops what
# a full pipe did not take) then loses nothing up to the line limit, whatever the load.
STDOUT_PIPE_BYTES = LINE_LIMIT
# proc.wait() also waits for the pipes to close, which a process the run left behind can hold
# open: the leader's exit is polled this often instead.
EXIT_POLL_S = 0.25

# The environment an agent gets unless its adapter names more: enough to run, nothing secret.
BASE_ENV_ALLOWLIST = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ",
    "TMPDIR", "SYSTEMROOT",
)


def build_env(
    extra: Mapping[str, str] | None = None,
    allow: Iterable[str] = (),
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The allow-listed subset of ``source`` (default: this process's environment) + ``extra``."""
    source = os.environ if source is None else source
    names = (*BASE_ENV_ALLOWLIST, *allow)
    env = {name: source[name] for name in names if name in source}
    env.update(extra or {})
    return env


def binary_version(binary: str, env: Mapping[str, str]) -> str:
    """``BINARY --version``'s first MAJOR.MINOR.PATCH, or "unknown" when it cannot run."""
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=VERSION_TIMEOUT_S,
                              env=dict(env), check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    found = _VERSION.search(done.stdout)
    return found.group(0) if found else "unknown"


@attrs.frozen
class RunSpec:
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    timeout_s: float = 3600.0
    stall_timeout_s: float = 300.0
    # The longest silence before the first line (never less than the stall timeout).
    startup_timeout_s: float = 120.0
    line_limit: int = LINE_LIMIT

    def idle_limit_s(self, started: bool) -> float:
        return self.stall_timeout_s if started else max(self.stall_timeout_s,
                                                         self.startup_timeout_s)


@attrs.frozen
class RunOutcome:
    exit_code: int | None
    duration_s: float
    pid: int
    timed_out: bool = False
    stalled: bool = False
    line_too_long: bool = False
    cancelled: bool = False
    spawn_error: str | None = None
    stderr_tail: str = ""
    stdout_tail: str = ""
    started: bool = True  # it printed a line (a stall before that is a start-up that never ended)
    idle_limit_s: float = 0.0  # the silence that ended a stalled run

    @property
    def killed(self) -> bool:
        return self.timed_out or self.stalled or self.line_too_long or self.cancelled

    def stall_reason(self, stall_timeout_s: float = 0.0) -> str:
        """Why a stalled run was stopped, in the words every adapter uses."""
        limit = self.idle_limit_s or stall_timeout_s
        if not self.started:
            return f"stalled: no output within the start-up allowance of {limit:g} s"
        return f"stalled: no output for {limit:g} s"


LineCallback = Callable[[str], None]


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if the supervisor dies, so no worker outlives it unseen.
    # Runs in the forked child before exec; keep it tiny and exception-free.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child_setup(own_cgroup: Path | None) -> Callable[[], None] | None:
    """What the forked child does before it execs (Linux): join the run's cgroup, so all it
    ever starts is in it, and take the parent-death signal."""
    if sys.platform != "linux":
        return None
    join = cgroup.joiner(own_cgroup) if own_cgroup is not None else None

    def setup() -> None:
        if join is not None:
            join()
        _die_with_parent()

    return setup


async def _drain(
    stream: asyncio.StreamReader, on_line: LineCallback | None, tail: deque[str],
    activity: list[float], too_long: asyncio.Event, spoke: asyncio.Event,
) -> None:
    while True:
        try:
            raw = await stream.readline()
        except (ValueError, asyncio.LimitOverrunError):
            # asyncio clears its buffer before raising, so memory stays bounded. Keep reading
            # (and discarding) to EOF, so the child never blocks on a full pipe.
            too_long.set()
            while await stream.read(1 << 16):
                pass
            return
        if not raw:
            return
        activity[0] = time.monotonic()
        spoke.set()
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        tail.append(line)
        if on_line is not None and line:
            on_line(line)


def _stdout_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) as wide as the line limit where the system allows it."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # a per-user cap, or not Linux
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, STDOUT_PIPE_BYTES)
    return read_fd, write_fd


async def _read_end(read_fd: int, limit: int,
                    ) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(read_fd, "rb", 0))
    return reader, transport


async def run_streaming(
    spec: RunSpec,
    *,
    on_stdout: LineCallback | None = None,
    on_stderr: LineCallback | None = None,
    on_spawn: Callable[[int, int], None] | None = None,
    cancel: asyncio.Event | None = None,
    idle_exempt: Callable[[], bool] | None = None,
) -> RunOutcome:
    """Run ``spec.argv`` to completion, calling ``on_stdout`` for every complete line.

    Never raises for the child's behaviour: a spawn failure, timeout, stall, over-long line
    or cancellation is reported in the RunOutcome, and the whole process group is gone when
    this returns.

    Until the child prints its first line (stdout or stderr) the idle limit is
    ``spec.startup_timeout_s``; from then on ``spec.stall_timeout_s``.

    ``idle_exempt``, when given, is asked once the stall timeout runs out: True means the agent
    is in a phase its own idle guard covers (Codex waiting on a model stream it watches with
    ``stream_idle_timeout_ms`` prints nothing while tokens arrive), so silence is not a stall
    yet; the idle clock restarts. The wall-clock timeout still applies.
    """
    started = time.monotonic()
    scope = new_run_scope()
    own_cgroup = run_cgroup(scope)
    stdout_read, stdout_write = _stdout_pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            cwd=str(spec.cwd),
            env=scoped_env(spec.env, scope),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout_write,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=spec.line_limit,
            preexec_fn=_child_setup(own_cgroup),
        )
    except OSError as error:
        os.close(stdout_read)
        discard_cgroup(own_cgroup)
        return RunOutcome(None, time.monotonic() - started, 0,
                          spawn_error=f"{type(error).__name__}: {error}")
    finally:
        os.close(stdout_write)  # the child has its copy: EOF comes when the run's copies close
    stdout, stdout_transport = await _read_end(stdout_read, spec.line_limit)
    pgid = proc.pid  # start_new_session makes the child its group's leader
    if on_spawn is not None:
        on_spawn(proc.pid, pgid)
    assert proc.stderr is not None
    stdout_tail: deque[str] = deque(maxlen=50)
    stderr_tail: deque[str] = deque(maxlen=50)
    activity = [time.monotonic()]
    spoke = asyncio.Event()  # the first line arrived: start-up is over
    line_too_long = asyncio.Event()
    readers = [
        asyncio.ensure_future(_drain(stdout, on_stdout, stdout_tail, activity,
                                     line_too_long, spoke)),
        asyncio.ensure_future(_drain(proc.stderr, on_stderr, stderr_tail, activity,
                                     line_too_long, spoke)),
    ]
    too_long_waiter = asyncio.ensure_future(line_too_long.wait())
    # Wakes the loop at the first line, when the idle limit drops to the stall timeout.
    spoke_waiter = asyncio.ensure_future(spoke.wait())
    waiter = asyncio.ensure_future(proc.wait())
    cancel_waiter = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    timed_out = stalled = too_long = cancelled = False
    stall_limit = 0.0
    try:
        while True:
            now = time.monotonic()
            wall_left = spec.timeout_s - (now - started)
            stall_limit = spec.idle_limit_s(spoke.is_set())
            idle_left = stall_limit - (now - activity[0])
            if wall_left <= 0:
                timed_out = True
                break
            if idle_left <= 0:
                if idle_exempt is not None and idle_exempt():
                    activity[0] = now
                    continue
                stalled = True
                break
            pending = {waiter, too_long_waiter, *(r for r in readers if not r.done())}
            if not spoke_waiter.done():
                pending.add(spoke_waiter)
            if cancel_waiter is not None:
                pending.add(cancel_waiter)
            done, _ = await asyncio.wait(
                pending, timeout=min(wall_left, idle_left, EXIT_POLL_S),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if line_too_long.is_set():
                too_long = True
                break
            if cancel_waiter is not None and cancel_waiter in done:
                cancelled = True
                break
            if waiter.done() or proc.returncode is not None:
                break
        if waiter.done() or proc.returncode is not None:
            # The leader exited; give the readers a moment to reach EOF (what it started may
            # still hold the pipes open), then make sure nothing of the run survives.
            await asyncio.wait(readers, timeout=DRAIN_GRACE_S)
    finally:
        # Whatever is left of the run: its group, its cgroup, and what left the group
        # (setsid, `set -m` jobs, daemons) but carries its scope.
        await end_scope_async(scope, pgid=pgid)
        await asyncio.wait({waiter}, timeout=KILL_GRACE_S * 3)
        exit_code = waiter.result() if waiter.done() else proc.returncode
        waiter.cancel()
        await asyncio.wait(readers, timeout=DRAIN_GRACE_S)
        # A line that was still in the buffer when the child exited counts too.
        too_long = too_long or line_too_long.is_set()
        for task in (*readers, too_long_waiter, spoke_waiter,
                     *([cancel_waiter] if cancel_waiter else [])):
            task.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        stdout_transport.close()
    return RunOutcome(
        exit_code=exit_code,
        duration_s=time.monotonic() - started,
        pid=proc.pid,
        timed_out=timed_out,
        stalled=stalled,
        line_too_long=too_long,
        cancelled=cancelled,
        stderr_tail="\n".join(stderr_tail),
        stdout_tail="\n".join(stdout_tail),
        started=spoke.is_set(),
        idle_limit_s=stall_limit if stalled else 0.0,
    )
