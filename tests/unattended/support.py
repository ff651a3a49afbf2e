"""Helpers for the unattended tests: real `oxi` subprocesses, ledger polling, leak checks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psutil

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import Event
from oxi_core.testing.repos import TestRepo

T = TypeVar("T")

# A host the probe sees as idle and roomy, so the ceiling (-n) is what limits concurrency.
ROOMY_HOST = json.dumps({"available_ram_bytes": 64 * 2**30, "cpu_count": 16,
                         "load_avg_5min": 0.0})


def wait_for(predicate: Callable[[], T], *, timeout: float = 30.0, every: float = 0.05,
             what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def ledger_of(repo: TestRepo) -> Ledger:
    return Ledger(repo.root / ".oxi" / "oxi.db")


def events_of(repo: TestRepo, *types: str, task_id: str | None = None) -> list[Event]:
    path = repo.root / ".oxi" / "oxi.db"
    if not path.exists():
        return []
    with Ledger(path) as ledger:
        return ledger.events(types=list(types) or None, task_id=task_id)


class OxiProcess:
    """`python -m oxi_core ARGS` in its own session, output captured to files."""

    def __init__(self, args: Sequence[str], cwd: Path, env: dict[str, str] | None = None,
                 *, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.monotonic_ns()}"
        self.stdout_path = log_dir / f"oxi-{stamp}.out"
        self.stderr_path = log_dir / f"oxi-{stamp}.err"
        full_env = {**os.environ, "OXI_RAISE_ERRORS": "0", "OXI_PROBE_READINGS": ROOMY_HOST,
                    **(env or {})}
        full_env.pop("PYTEST_CURRENT_TEST", None)
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "oxi_core", *args], cwd=cwd, env=full_env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
            )
        self.pid = self.proc.pid

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signum)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"oxi {self.proc.args[3:]} did not exit within {timeout}s\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-4000:]}"
            ) from None

    def stop(self) -> None:
        """Teardown: SIGTERM (saturate then waits for its workers), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def run_oxi(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "OXI_RAISE_ERRORS": "0", "OXI_PROBE_READINGS": ROOMY_HOST,
                **(env or {})}
    full_env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run([sys.executable, "-m", "oxi_core", *args], cwd=cwd, text=True,
                          capture_output=True, env=full_env, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int, timeout: float = 30.0) -> bool:
    """Whether ``pid`` is gone (or a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def is_scripted_agent(pid: int) -> bool:
    """True while ``pid`` runs the scripted agent (or a child it started)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(process.cmdline())
    except psutil.Error:
        return False
    return "scripted_agent.py" in cmdline or "import time; time.sleep(" in cmdline


def agent_pids(repo: TestRepo, pid_dir: Path | None = None) -> list[int]:
    """Every agent pid the ledger recorded, plus children the scripted agent reported."""
    pids = [int(e.payload["pid"]) for e in events_of(repo, ev.WORKER_STARTED)]
    if pid_dir is not None and pid_dir.is_dir():
        pids += [int(p.read_text()) for p in pid_dir.glob("*.child")]
    return pids


def leaked_agents(repo: TestRepo, pid_dir: Path | None = None) -> list[int]:
    """Agent processes still running; each is killed (it is ours) and returned."""
    leaked = [pid for pid in agent_pids(repo, pid_dir) if is_scripted_agent(pid)]
    for pid in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return leaked


def assert_ledger_consistent(ledger: Ledger) -> None:
    """The tasks projection agrees with the events: status, attempts and cost per task."""
    for task in ledger.tasks():
        events = ledger.events(task_id=task.id)
        spent = sum(e.cost_usd for e in events)
        assert abs(task.cost_usd - spent) < 1e-9, (task.id, task.cost_usd, spent)
        moves = [e for e in events if "to" in e.payload and "from" in e.payload]
        claims = [e for e in events if e.type == ev.TASK_CLAIMED]
        last_status = moves[-1].payload["to"] if moves else "planned"
        if claims and (not moves or claims[-1].id > moves[-1].id):
            last_status = "dispatched"
        assert str(task.status) == last_status, (task.id, task.status, last_status)
        assert task.attempts == len(claims), (task.id, task.attempts, len(claims))  # never reset
        assert [c.payload.get("attempt") for c in claims] == list(range(1, len(claims) + 1))
    total = sum(e.cost_usd for e in ledger.events())
    assert abs(ledger.total_spend() - total) < 1e-9


@contextmanager
def running(process: OxiProcess) -> Iterator[OxiProcess]:
    try:
        yield process
    finally:
        process.stop()


def origin_lines(repo: TestRepo, path: str) -> list[str]:
    text = repo.origin_file(path)
    return [] if text is None else text.splitlines()


def status_json(repo: TestRepo) -> dict[str, Any]:
    result = run_oxi(["status", "--json"], cwd=repo.root)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data
