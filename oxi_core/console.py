"""The `oxi` console script: oxi_core.cli's main, in a process that is one command.

Most commands are short. For them, Python's cyclic garbage collector only costs time: it runs
while click and oxi's modules load (which leave no garbage worth a collection) and walks every
object at exit, about 4 ms of a 45 ms `oxi --help`. So it starts switched off, and a timer
switches it back on after COLLECTOR_OFF_S: a command that runs longer (agents, `saturate`, the
dashboard) collects as any process does.
"""

from __future__ import annotations

import gc
from typing import NoReturn

COLLECTOR_OFF_S = 2.0


def main() -> NoReturn:
    gc.disable()
    collect_again_after(COLLECTOR_OFF_S)
    from oxi_core.cli import main as run_command

    run_command()


def collect_again_after(seconds: float) -> None:
    """Switch the collector back on in ``seconds`` (a daemon timer: it never holds the exit)."""
    import threading

    timer = threading.Timer(seconds, gc.enable)
    timer.daemon = True
    timer.start()
