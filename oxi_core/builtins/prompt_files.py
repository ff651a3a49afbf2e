"""The exec agent's prompt file, in a private temporary folder that never outlives its run.

A run removes its folder when it ends. A process killed outright (SIGKILL, the host losing
power) cannot, so each folder is named for the process that made it, its pid and start time
(``oxi-prompt-<pid>-<start ms>-XXXX``), and every run first removes the folders whose process
is gone: whatever a crash left behind goes with the next run on the host.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oxi_core.engine.reaper import process_start_time, same_process_alive

PREFIX = "oxi-prompt-"
_OWNED = re.compile(rf"^{PREFIX}(?P<pid>\d+)-(?P<started_ms>\d+)-")


@contextmanager
def prompt_file(prompt: str) -> Iterator[Path]:
    """``prompt`` in ``<folder>/prompt.md``, readable by this user only; the folder is gone
    when the block ends."""
    sweep_orphans()
    pid = os.getpid()
    started_ms = int((process_start_time(pid) or 0.0) * 1000)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-{started_ms}-"))
    try:
        path = folder / "prompt.md"
        path.write_text(prompt, encoding="utf-8")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_orphans(root: Path | None = None) -> list[Path]:
    """Remove this user's prompt folders whose process is gone; the removed folders."""
    removed: list[Path] = []
    uid = os.getuid()
    for folder in (root or Path(tempfile.gettempdir())).glob(f"{PREFIX}*"):
        owned = _OWNED.match(folder.name)
        if owned is None:
            continue  # not named by this module: not ours to judge
        try:
            if folder.lstat().st_uid != uid or not folder.is_dir():
                continue
        except OSError:
            continue
        if same_process_alive(int(owned["pid"]), int(owned["started_ms"]) / 1000):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
