"""The shared agent runner (oxi_core.agentic.runner) with small Python children."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from oxi_core.agentic import cgroup
from oxi_core.agentic.runner import LINE_LIMIT, RunOutcome, RunSpec, build_env, run_streaming
from tests.unattended.support import alive, wait_gone

PY = sys.executable


def child(tmp_path: Path, body: str, name: str = "child.py") -> Path:
    script = tmp_path / name
    script.write_text("import os, sys, time, subprocess\n" + textwrap.dedent(body))
    return script


def spec(tmp_path: Path, script: Path, *args: str, **kw: Any) -> RunSpec:
    env = kw.pop("env", None) or build_env()
    return RunSpec(argv=(PY, str(script), *args), cwd=tmp_path, env=env, **kw)


def run(the_spec: RunSpec, **kw: Any) -> tuple[RunOutcome, list[str]]:
    lines: list[str] = []
    outcome = asyncio.run(run_streaming(the_spec, on_stdout=lines.append, **kw))
    return outcome, lines


SPAWN_GRANDCHILD = """
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(sys.argv[1], "w") as f:
        f.write(str(grandchild.pid))
"""


def test_argv_reaches_the_child_verbatim_and_no_shell_runs(tmp_path: Path) -> None:
    script = child(tmp_path, "print(repr(sys.argv[1:]))\n")
    tricky = "$(touch pwned); `touch pwned2` && echo hi > pwned3 | cat *"
    outcome, lines = run(spec(tmp_path, script, tricky, "two words"))
    assert outcome.exit_code == 0
    assert lines == [repr([tricky, "two words"])]
    assert not list(tmp_path.glob("pwned*"))


def test_the_child_leads_its_own_process_group_and_on_spawn_says_so(tmp_path: Path) -> None:
    script = child(tmp_path, "print(os.getpid(), os.getpgid(0), os.getsid(0))\n")
    spawned: list[tuple[int, int]] = []
    outcome, lines = run(spec(tmp_path, script), on_spawn=lambda p, g: spawned.append((p, g)))
    pid, pgid, sid = map(int, lines[0].split())
    assert spawned == [(pid, pgid)]
    assert pid == pgid == sid == outcome.pid
    assert pgid != os.getpgid(0)


def test_only_allow_listed_variables_reach_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXI_TEST_SECRET", "sk-ant-never-leak-this-key-0123456789")
    monkeypatch.setenv("PASSED_ON_PURPOSE", "yes")
    script = child(tmp_path, "import json; print(json.dumps(dict(os.environ)))\n")
    env = build_env({"AGENT_KEY": "k"}, allow=("PASSED_ON_PURPOSE",))
    outcome, lines = run(spec(tmp_path, script, env=env))
    seen = json.loads(lines[0])
    assert "OXI_TEST_SECRET" not in seen
    assert "sk-ant-never-leak" not in lines[0]
    assert seen["AGENT_KEY"] == "k"
    assert seen["PASSED_ON_PURPOSE"] == "yes"
    assert seen["PATH"] == os.environ["PATH"]
    assert outcome.exit_code == 0


def test_stdin_is_closed_so_a_reader_gets_end_of_file_at_once(tmp_path: Path) -> None:
    script = child(tmp_path, "data = sys.stdin.read(); print(repr(data))\n")
    outcome, lines = run(spec(tmp_path, script, timeout_s=10))
    assert (outcome.exit_code, lines) == (0, ["''"])
    assert outcome.duration_s < 5


def test_ten_megabytes_of_stderr_and_a_little_stdout_do_not_deadlock(tmp_path: Path) -> None:
    script = child(
        tmp_path,
        """
        chunk = "e" * 1023 + "\\n"
        for _ in range(10 * 1024):
            sys.stderr.write(chunk)
        print("done", flush=True)
    """,
    )
    outcome, lines = run(spec(tmp_path, script, timeout_s=30, stall_timeout_s=10))
    assert outcome.exit_code == 0
    assert not outcome.killed
    assert lines == ["done"]
    assert outcome.stderr_tail.endswith("e" * 1023)


def test_a_partial_line_is_held_until_its_newline_arrives(tmp_path: Path) -> None:
    script = child(
        tmp_path,
        """
        sys.stdout.write('{"type": "assistant", '); sys.stdout.flush()
        time.sleep(0.3)
        sys.stdout.write('"text": "hi"}\\nsecond'); sys.stdout.flush()
        time.sleep(0.2)
        sys.stdout.write(' line\\n')
    """,
    )
    outcome, lines = run(spec(tmp_path, script))
    assert lines == ['{"type": "assistant", "text": "hi"}', "second line"]
    assert outcome.exit_code == 0


# What claude does with its result: one JSON line, then process.exit at once. Node drops what
# the stdout pipe has not taken by then.
PRINT_AND_EXIT = ("process.stdout.write(JSON.stringify({type: 'result', text: "
                  "'x'.repeat(+process.argv[1])}) + '\\n'); process.exit(0)")


def test_a_long_line_a_node_cli_prints_just_before_exiting_is_read_whole(
    tmp_path: Path,
) -> None:
    node = shutil.which("node")
    assert node is not None, "the agent CLIs run on Node: it is installed with them"
    size = 900 * 1024  # under the line limit; a 64 KB pipe lost every one of these
    for _ in range(5):
        lines: list[str] = []
        outcome = asyncio.run(run_streaming(
            RunSpec(argv=(node, "-e", PRINT_AND_EXIT, str(size)), cwd=tmp_path, env=build_env()),
            on_stdout=lines.append))
        assert outcome.exit_code == 0 and not outcome.line_too_long
        assert len(lines) == 1 and len(json.loads(lines[0])["text"]) == size


def test_a_line_over_the_limit_stops_the_run_without_holding_it_in_memory(
    tmp_path: Path,
) -> None:
    script = child(
        tmp_path,
        """
        print("before", flush=True)
        chunk = "x" * 65536
        for _ in range(50 * 16):  # 50 MB, no newline
            sys.stdout.write(chunk)
        print("never read")
        time.sleep(30)
    """,
    )
    tracemalloc.start()
    try:
        outcome, lines = run(spec(tmp_path, script, timeout_s=60, stall_timeout_s=30))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.line_too_long
    assert lines == ["before"]
    assert outcome.duration_s < 20
    assert peak < 8 * LINE_LIMIT  # the child wrote 50 times the limit
    assert not alive(outcome.pid)


def test_the_wall_clock_timeout_kills_the_whole_group_grandchildren_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = child(
        tmp_path,
        SPAWN_GRANDCHILD
        + """
    while True:
        print("busy", flush=True)
        time.sleep(0.1)
    """,
    )
    outcome, lines = run(spec(tmp_path, script, str(pid_file), timeout_s=1.0, stall_timeout_s=30))
    assert outcome.timed_out and not outcome.stalled
    assert 1.0 <= outcome.duration_s < 6
    assert len(lines) >= 3
    assert wait_gone(int(pid_file.read_text()))
    assert not alive(outcome.pid)


def test_the_stall_timeout_kills_a_silent_group_grandchildren_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = child(
        tmp_path,
        SPAWN_GRANDCHILD
        + """
    print("one line, then silence", flush=True)
    time.sleep(60)
    """,
    )
    outcome, lines = run(spec(tmp_path, script, str(pid_file), timeout_s=60, stall_timeout_s=1.0))
    assert outcome.stalled and not outcome.timed_out
    assert outcome.duration_s < 6
    assert lines == ["one line, then silence"]
    assert wait_gone(int(pid_file.read_text()))


def test_start_up_silence_has_its_own_allowance_then_the_stall_timeout_holds(
    tmp_path: Path,
) -> None:
    late = child(tmp_path, "time.sleep(2)\nprint('up', flush=True)\ntime.sleep(0.2)\n")
    outcome, lines = run(spec(tmp_path, late, timeout_s=30, stall_timeout_s=0.5,
                              startup_timeout_s=10))
    assert (outcome.killed, outcome.exit_code, lines) == (False, 0, ["up"])
    never = child(tmp_path, "time.sleep(60)\n", name="never.py")
    outcome, lines = run(spec(tmp_path, never, timeout_s=30, stall_timeout_s=0.5,
                              startup_timeout_s=1.5))
    assert outcome.stalled and not outcome.started and lines == []
    assert 1.5 <= outcome.duration_s < 8
    # Once it has spoken, silence is measured against the stall timeout alone.
    quiet = child(tmp_path, "print('up', flush=True)\ntime.sleep(60)\n", name="quiet.py")
    outcome, _ = run(spec(tmp_path, quiet, timeout_s=30, stall_timeout_s=0.5,
                          startup_timeout_s=20))
    assert outcome.stalled and outcome.started and outcome.duration_s < 8


ESCAPE_THE_GROUP = """
    import pathlib
    folder = pathlib.Path(sys.argv[1])
    # A new session (setsid), a bash job under `set -m` (its own group), and a daemon that
    # double-forks into a new session: none of them is in the run's process group.
    # (setsid in a process that leads no group calls setsid() and execs: the same pid)
    (folder / "setsid.pid").write_text(str(subprocess.Popen(["setsid", "sleep", "301"]).pid))
    subprocess.Popen(["bash", "-c", "set -m; sleep 302 & echo $! > " + str(folder / "job.pid")])
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            (folder / "daemon.pid").write_text(str(os.getpid()))
            time.sleep(303)
        os._exit(0)
"""


ESCAPEES = ("setsid.pid", "job.pid", "daemon.pid")


def escaped_pids(folder: Path) -> list[int]:
    """The three processes of ESCAPE_THE_GROUP (each wrote its pid)."""
    files = [folder / name for name in ESCAPEES]
    assert all(f.exists() and f.read_text().strip() for f in files), "not all three started"
    return [int(f.read_text()) for f in files]


@pytest.mark.parametrize("scope", ["cgroup", "marker only"])
@pytest.mark.parametrize("ending", ["exits", "times out", "is cancelled"])
def test_processes_that_left_the_group_are_stopped_when_the_run_ends(
    tmp_path: Path, ending: str, scope: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both ways to find them (T0-106): the run's cgroup where the host offers one, and the
    # environment marker, which is all there is elsewhere.
    if scope == "marker only":
        monkeypatch.setenv(cgroup.DISABLE_VAR, "1")
    elif (host := cgroup.subtree()).path is None:
        pytest.skip(f"no writable cgroup v2 here: {host.reason}")
    rest = {"exits": "    print('done', flush=True)\n",
            "times out": "    print('busy', flush=True)\n    time.sleep(60)\n",
            "is cancelled": "    print('busy', flush=True)\n    time.sleep(60)\n"}[ending]
    script = child(tmp_path, ESCAPE_THE_GROUP + """
    while not all((folder / name).exists() for name in ("job.pid", "daemon.pid")):
        time.sleep(0.02)
""" + rest)
    folder = tmp_path / "pids"
    folder.mkdir()

    async def go() -> RunOutcome:
        cancel = asyncio.Event()
        if ending == "is cancelled":
            asyncio.get_running_loop().call_later(1.5, cancel.set)
        return await run_streaming(
            spec(tmp_path, script, str(folder), timeout_s=1.5 if ending == "times out" else 30,
                 stall_timeout_s=30), cancel=cancel)

    outcome = asyncio.run(go())
    assert (outcome.exit_code == 0) is (ending == "exits")
    assert outcome.timed_out is (ending == "times out")
    assert outcome.cancelled is (ending == "is cancelled")
    assert [pid for pid in escaped_pids(folder) if not wait_gone(pid)] == []


def test_an_agent_that_keeps_printing_is_never_killed_for_idleness(tmp_path: Path) -> None:
    script = child(
        tmp_path,
        """
        for i in range(12):
            print(i, flush=True)
            time.sleep(0.2)
    """,
    )
    outcome, lines = run(spec(tmp_path, script, timeout_s=30, stall_timeout_s=0.6))
    assert not outcome.killed
    assert outcome.exit_code == 0
    assert outcome.duration_s > 2 * 0.6
    assert lines == [str(i) for i in range(12)]


def test_an_idle_exempt_phase_is_not_a_stall_but_the_wall_clock_still_holds(
    tmp_path: Path,
) -> None:
    script = child(tmp_path, "time.sleep(1.5)\nprint('answer', flush=True)\n")
    outcome, lines = run(
        spec(tmp_path, script, timeout_s=30, stall_timeout_s=0.4), idle_exempt=lambda: True
    )
    assert (outcome.exit_code, outcome.stalled, lines) == (0, False, ["answer"])
    slow = child(tmp_path, "time.sleep(30)\n", name="slow.py")
    outcome, _ = run(
        spec(tmp_path, slow, timeout_s=1.0, stall_timeout_s=0.4), idle_exempt=lambda: True
    )
    assert outcome.timed_out


def test_the_cancel_event_stops_the_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = child(tmp_path, SPAWN_GRANDCHILD + "    time.sleep(60)\n")

    async def go() -> RunOutcome:
        cancel = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, cancel.set)
        return await run_streaming(
            spec(tmp_path, script, str(pid_file), stall_timeout_s=60), cancel=cancel
        )

    outcome = asyncio.run(go())
    assert outcome.cancelled
    assert outcome.duration_s < 6
    assert wait_gone(int(pid_file.read_text()))


def test_a_missing_binary_is_reported_not_raised(tmp_path: Path) -> None:
    spawned: list[tuple[int, int]] = []
    the_spec = RunSpec(argv=(str(tmp_path / "no-such-agent"),), cwd=tmp_path, env=build_env())
    outcome, lines = run(the_spec, on_spawn=lambda p, g: spawned.append((p, g)))
    assert outcome.spawn_error is not None
    assert outcome.spawn_error.startswith("FileNotFoundError")
    assert (outcome.exit_code, lines, spawned) == (None, [], [])


def test_the_exit_code_and_the_tails_are_reported(tmp_path: Path) -> None:
    script = child(tmp_path, "print('out'); print('err', file=sys.stderr); sys.exit(3)\n")
    outcome, _ = run(spec(tmp_path, script))
    assert (outcome.exit_code, outcome.stdout_tail, outcome.stderr_tail) == (3, "out", "err")
    assert not outcome.killed
