"""Start several real processes at the same moment, for tests of races between them.

Every child runs a Python program that calls ``wait_for_the_others()`` after its imports: a
file barrier that opens once every child is ready, so the racing part starts in all of them
within a millisecond or so instead of staggered by each interpreter's start-up.
``start_oxi_together`` runs `oxi` commands that way (the same entry point as the `oxi` script).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_BARRIER = """
import os, sys, time
from pathlib import Path
_folder, _name = Path(sys.argv[1]), sys.argv[2]
sys.argv = [sys.argv[0], *sys.argv[3:]]
def wait_for_the_others():
    (_folder / f"ready-{_name}").touch()
    while not (_folder / "go").exists():
        time.sleep(0.0005)
"""
_OXI = """
import oxi_core.cli, oxi_core.config, oxi_core.engine.engine, oxi_core.ledger
wait_for_the_others()
oxi_core.cli.main(sys.argv[1:])
"""


def start_oxi_together(commands: Sequence[Sequence[str]], *, gate: Path, cwd: Path,
                       env: Mapping[str, str] | None = None) -> list[subprocess.Popen[str]]:
    """`oxi ARGS` for each ARGS of ``commands``, started so that they reach their work at
    once; ``gate`` is a new folder for the barrier. Output is captured (text)."""
    return start_python_together(_OXI, commands, gate=gate, cwd=cwd, env=env)


def start_python_together(code: str, arguments: Sequence[Sequence[str]], *, gate: Path,
                          cwd: Path, env: Mapping[str, str] | None = None,
                          ) -> list[subprocess.Popen[str]]:
    """One process per entry of ``arguments`` (its ``sys.argv[1:]``), each running ``code``,
    which calls ``wait_for_the_others()`` where the race begins (``sys`` and ``Path`` are
    imported for it)."""
    return _start([[_BARRIER + code, *args] for args in arguments], gate, cwd, env)


def _start(programs: Sequence[Sequence[str]], gate: Path, cwd: Path,
           env: Mapping[str, str] | None, ready_timeout_s: float = 120.0,
           ) -> list[subprocess.Popen[str]]:
    gate.mkdir(parents=True)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(gate), str(n), *args],
                              cwd=cwd, env=dict(env) if env is not None else None, text=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
             for n, (code, *args) in enumerate(programs)]
    deadline = time.monotonic() + ready_timeout_s
    ready = [gate / f"ready-{n}" for n in range(len(procs))]
    while not all(path.exists() for path in ready):
        if any(proc.poll() is not None for proc in procs) or time.monotonic() > deadline:
            for proc in procs:
                proc.kill()
            problems = [proc.communicate()[1][-2000:] for proc in procs]
            raise RuntimeError(f"the processes never all reached the barrier in {gate}: "
                               f"{problems}")
        time.sleep(0.002)
    (gate / "go").touch()
    return procs
