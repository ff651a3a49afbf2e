"""T0-106: the run cgroups (oxi_core.agentic.cgroup) against the host's real cgroup2 mount, and
the "none" answer with its reason where there is nothing writable."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from oxi_core.agentic import cgroup
from oxi_core.agentic.runner import RunOutcome, RunSpec, build_env, run_streaming
from oxi_core.agentic.scope import end_scope
from tests.unattended.support import alive, wait_gone

HOST = cgroup.discover()
needs_cgroup = pytest.mark.skipif(HOST.path is None,
                                  reason=f"no writable cgroup v2 here: {HOST.reason}")

# A process that clears its environment and leaves the session: no marker, no group.
ESCAPE = 'env -i setsid sleep 309 & echo $! > "$1"; echo started'


def read_pid(path: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.02)
    return int(path.read_text())


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids this test started: killed at the end if anything went wrong."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def scope_name() -> str:
    return f"T9-{uuid.uuid4().hex[:6]}.1.{os.getpid()}.0/{uuid.uuid4().hex[:12]}"


def start_in(path: Path, pid_file: Path) -> subprocess.Popen[bytes]:
    """bash, joined to ``path`` before it execs, starting the escapee."""
    return subprocess.Popen(["bash", "-c", ESCAPE, "escape", str(pid_file)],
                            stdout=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=cgroup.joiner(path))


# -- where oxi may make cgroups -------------------------------------------------------------


@needs_cgroup
def test_the_subtree_is_this_processs_own_cgroup_below_the_cgroup2_mount() -> None:
    own = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if line.startswith("0::"))
    assert HOST.path is not None and HOST.mount is not None
    assert HOST.path == HOST.mount / own.lstrip("/")
    assert (HOST.mount / "cgroup.procs").exists() and (HOST.path / "cgroup.procs").exists()
    assert HOST.describe() == f"cgroup v2 ({HOST.path})"
    # The probe left nothing behind.
    assert not [p for p in HOST.path.iterdir() if p.name.startswith(f"oxi-probe-{os.getpid()}-")]


def test_without_a_cgroup2_mount_the_answer_is_none_with_the_reason(tmp_path: Path) -> None:
    own = tmp_path / "cgroup"
    own.write_text("0::/\n")
    mounts = tmp_path / "mountinfo"
    mounts.write_text("22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
                      "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n")
    found = cgroup.discover(mounts, own)
    assert found.path is None
    assert found.reason == f"no cgroup2 mount holds this process's cgroup / ({mounts})"
    assert found.describe().startswith("environment marker only (no cgroup2 mount")


def test_a_read_only_cgroup2_mount_is_none_with_the_reason(tmp_path: Path) -> None:
    own = tmp_path / "cgroup"
    own.write_text("0::/user.slice/session-3.scope\n")
    mounts = tmp_path / "mountinfo"
    mounts.write_text("41 31 0:38 / /sys/fs/cgroup ro,nosuid,relatime - cgroup2 cgroup2 rw\n")
    assert cgroup.discover(mounts, own).reason == "the cgroup2 mount /sys/fs/cgroup is read-only"


def test_no_v2_line_or_no_proc_files_is_none_with_the_reason(tmp_path: Path) -> None:
    own = tmp_path / "cgroup"
    own.write_text("4:memory:/\n1:cpu:/\n")
    mounts = tmp_path / "mountinfo"
    mounts.write_text("")
    assert cgroup.discover(mounts, own).reason == (
        f"this process is in no cgroup v2 ({own} has no 0:: line)")
    assert cgroup.discover(tmp_path / "missing", own).reason == (
        f"cannot read {tmp_path / 'missing'}: No such file or directory")


def test_a_folder_that_is_missing_or_no_cgroup_is_none_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    found = cgroup.probe(cgroup.Subtree(missing, missing))
    assert found.reason == f"cannot make a cgroup in {missing}: No such file or directory"
    found = cgroup.probe(cgroup.Subtree(tmp_path, tmp_path))  # a plain folder: no cgroup.procs
    assert found.reason == (f"cannot move a process into a cgroup in {tmp_path}: "
                            "No such file or directory")
    assert not list(tmp_path.glob("oxi-probe-*"))  # the trial folder was removed


@needs_cgroup
def test_a_user_the_cgroup_is_not_delegated_to_gets_none_with_the_reason() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the probe as another user")
    # Loaded as root (the interpreter lives in root's home), then the probe runs as nobody.
    done = subprocess.run(
        [sys.executable, "-c", "import os; from oxi_core.agentic.cgroup import discover; "
         "os.setgid(65534); os.setuid(65534); print(discover().describe())"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"environment marker only (cannot make a cgroup in {HOST.path}: Permission denied)")


def test_oxi_no_cgroup_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cgroup.DISABLE_VAR, "1")
    assert cgroup.subtree().describe() == "environment marker only (OXI_NO_CGROUP=1 is set)"
    assert cgroup.make_run_cgroup(scope_name()) is None


# -- a run's cgroup -------------------------------------------------------------------------


@needs_cgroup
def test_a_run_cgroup_holds_a_process_that_cleared_its_environment_until_it_is_killed(
    tmp_path: Path, started: list[int],
) -> None:
    scope = scope_name()
    path = cgroup.make_run_cgroup(scope, HOST)
    assert path is not None and HOST.path is not None
    base, _, run = scope.partition("/")
    assert path == HOST.path / f"oxi-{base}" / run
    shell = start_in(path, tmp_path / "escapee.pid")
    escapee = read_pid(tmp_path / "escapee.pid")
    started.extend([shell.pid, escapee])
    shell.wait(timeout=30)
    assert escapee in cgroup.members([path])
    assert escapee in cgroup.members(cgroup.scope_cgroups(base, prefix=True, tree=HOST))
    assert "OXI_PROCESS_SCOPE" not in psutil.Process(escapee).environ()
    cgroup.end([path])
    assert wait_gone(escapee)
    assert not path.exists() and not path.parent.exists()  # the empty claim folder went too


@needs_cgroup
def test_without_cgroup_kill_the_cgroup_is_frozen_killed_and_thawed(
    tmp_path: Path, started: list[int],
) -> None:
    path = cgroup.make_run_cgroup(scope_name(), HOST)
    assert path is not None
    shell = start_in(path, tmp_path / "escapee.pid")
    escapee = read_pid(tmp_path / "escapee.pid")
    started.extend([shell.pid, escapee])
    shell.wait(timeout=30)
    cgroup.kill(path, kill_file=False)
    assert wait_gone(escapee)
    assert "frozen 0" in (path / "cgroup.events").read_text()  # thawed again
    assert cgroup.remove(path)
    assert not path.parent.exists()


@needs_cgroup
def test_the_reaper_finds_a_claims_cgroup_made_below_another_cgroup(
    tmp_path: Path, started: list[int],
) -> None:
    # A supervisor started in another login session made its cgroups there.
    assert HOST.path is not None
    elsewhere = HOST.path / f"oxi-test-elsewhere-{os.getpid()}"
    elsewhere.mkdir()
    try:
        there = cgroup.Subtree(elsewhere, HOST.mount)
        scope = scope_name()
        path = cgroup.make_run_cgroup(scope, there)
        assert path is not None and path.parent.parent == elsewhere
        shell = start_in(path, tmp_path / "escapee.pid")
        escapee = read_pid(tmp_path / "escapee.pid")
        started.extend([shell.pid, escapee])
        shell.wait(timeout=30)
        base = scope.partition("/")[0]
        assert cgroup.scope_cgroups(base, prefix=True, tree=HOST) == [path.parent]
        killed = end_scope(base, prefix=True, grace_s=1.0)
        assert escapee in killed
        assert wait_gone(escapee)
        assert not path.parent.exists()
    finally:
        cgroup.kill(elsewhere)
        assert cgroup.remove(elsewhere)


@needs_cgroup
def test_empty_cgroups_of_processes_that_are_gone_are_swept(
    tmp_path: Path, started: list[int],
) -> None:
    assert HOST.path is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    me = psutil.Process()
    mine = round(me.create_time() * 100)
    names = {"dead claim": f"T9-1.1.{dead.pid}.{mine}", "dead run": f"run.{dead.pid}",
             "reused pid": f"T9-2.1.{os.getpid()}.{mine - 500}",
             "live claim": f"T9-3.1.{os.getpid()}.{mine}", "live run": f"run.{os.getpid()}",
             "still holding a process": f"T9-4.1.{dead.pid}.{mine}"}
    paths = {what: cgroup.make_run_cgroup(f"{name}/{uuid.uuid4().hex[:12]}", HOST)
             for what, name in names.items()}
    holding = paths["still holding a process"]
    assert holding is not None
    shell = start_in(holding, tmp_path / "escapee.pid")
    started.extend([shell.pid, read_pid(tmp_path / "escapee.pid")])
    shell.wait(timeout=30)
    try:
        swept = cgroup.sweep(HOST.path)
        # reused pid: this process's pid but another start time, so its owner is gone too
        gone = {"dead claim", "dead run", "reused pid"}
        assert {what for what, path in paths.items() if path and not path.exists()} == gone
        assert sorted(p.name for p in swept) == sorted(
            f"oxi-{names[what]}" for what in gone)
    finally:
        cgroup.end(path for path in paths.values() if path is not None)


# -- runs through the runner ----------------------------------------------------------------


def escaping_run(tmp_path: Path, ending: str, escape: str = ESCAPE) -> RunOutcome:
    tail = {"exits": "", "times out": "sleep 60", "is cancelled": "sleep 60"}[ending]
    spec = RunSpec(argv=("bash", "-c", f"{escape}; {tail}", "agent",
                         str(tmp_path / "escapee.pid")),
                   cwd=tmp_path, env=build_env(), stall_timeout_s=30,
                   timeout_s=2.0 if ending == "times out" else 30)

    async def go() -> RunOutcome:
        cancel = asyncio.Event()
        if ending == "is cancelled":
            asyncio.get_running_loop().call_later(2.0, cancel.set)
        return await run_streaming(spec, cancel=cancel)

    return asyncio.run(go())


@needs_cgroup
@pytest.mark.parametrize("ending", ["exits", "times out", "is cancelled"])
def test_a_process_that_cleared_its_environment_is_stopped_when_the_run_ends(
    tmp_path: Path, ending: str, started: list[int],
) -> None:
    outcome = escaping_run(tmp_path, ending)
    escapee = read_pid(tmp_path / "escapee.pid")
    started.append(escapee)
    assert (outcome.exit_code == 0) is (ending == "exits")
    assert wait_gone(escapee)
    assert HOST.path is not None
    leftovers = [p.name for p in HOST.path.iterdir()
                 if p.is_dir() and p.name == f"oxi-run.{os.getpid()}"]
    assert leftovers == []  # the run's cgroup and its empty parent are removed


def test_with_the_marker_alone_a_cleared_environment_escapes_as_documented(
    tmp_path: Path, started: list[int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fallback's known limit (docs/security.md): this is what the cgroup is for.
    monkeypatch.setenv(cgroup.DISABLE_VAR, "1")
    # (its output elsewhere: a survivor holding the run's pipes would outlive the event loop)
    outcome = escaping_run(tmp_path, "exits", ESCAPE.replace("&", "> /dev/null 2>&1 &"))
    escapee = read_pid(tmp_path / "escapee.pid")
    started.append(escapee)
    assert outcome.exit_code == 0
    assert alive(escapee)


# -- oxi doctor -----------------------------------------------------------------------------


def doctor(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (folder / "oxi.toml").write_text('[agents.worker]\ntype = "exec"\n'
                                     'kwargs = { argv = ["true"] }\n')
    (folder / "roadmap.md").write_text("# roadmap\n")
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return subprocess.run([sys.executable, "-m", "oxi_core", "doctor", *args], cwd=folder,
                          text=True, capture_output=True, timeout=120,
                          env={**os.environ, "OXI_INFERENCE_OFFLINE": "1", **env})


@needs_cgroup
def test_oxi_doctor_names_the_cgroup_runs_are_held_in(tmp_path: Path) -> None:
    lines = doctor(tmp_path).stdout.splitlines()
    assert f"process scope: cgroup v2 ({HOST.path})" in lines
    report = json.loads(doctor(tmp_path, "--json").stdout)
    assert report["process_scope"] == {"kind": "cgroup v2", "cgroup": str(HOST.path),
                                       "reason": None,
                                       "description": f"cgroup v2 ({HOST.path})"}


def test_oxi_doctor_says_when_the_environment_marker_is_all_there_is(tmp_path: Path) -> None:
    lines = doctor(tmp_path, OXI_NO_CGROUP="1").stdout.splitlines()
    assert ("process scope: environment marker only (OXI_NO_CGROUP=1 is set)") in lines
    # `oxi config check` stays fast: it probes nothing.
    checked = subprocess.run([sys.executable, "-m", "oxi_core", "config", "check"],
                             cwd=tmp_path, text=True, capture_output=True, timeout=120)
    assert "process scope" not in checked.stdout
