"""The `oxi` console script (oxi_core/console.py): a command starts with the cyclic garbage
collector off, and one that runs longer than COLLECTOR_OFF_S gets it back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _python(code: str, *argv: str) -> str:
    # Without the test run's coverage, which a subprocess would start.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    return done.stdout + done.stderr


def test_a_short_command_runs_and_exits_without_the_collector() -> None:
    shown = _python(
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('collector on at exit:', gc.isenabled()))\n"
        "sys.argv = ['oxi', '--help']\n"
        "from oxi_core.console import main\n"
        "main()\n")
    assert "Usage: oxi" in shown
    assert "collector on at exit: False" in shown


def test_a_command_that_runs_longer_gets_the_collector_back() -> None:
    # The command's process lives on past a short grace (its exit handler waits): the timer
    # main() started has turned the collector on by then.
    shown = _python(
        "import atexit, gc, sys, time\n"
        "def last_look():\n"
        "    deadline = time.monotonic() + 60\n"
        "    while not gc.isenabled() and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    print('collector on later:', gc.isenabled())\n"
        "atexit.register(last_look)\n"
        "import oxi_core.console as console\n"
        "console.COLLECTOR_OFF_S = 0.05\n"
        "sys.argv = ['oxi', '--version']\n"
        "console.main()\n")
    assert "oxi, version" in shown and "collector on later: True" in shown


@pytest.mark.parametrize("module", ["oxi_core.console", "oxi_core"])
def test_the_console_script_and_python_m_are_the_same_command(module: str) -> None:
    runner = "from oxi_core.console import main; main()" if module == "oxi_core.console" \
        else "import runpy; runpy.run_module('oxi_core', run_name='__main__')"
    shown = _python(f"import sys; sys.argv = ['oxi', '--version']\n{runner}\n")
    assert "oxi, version" in shown
