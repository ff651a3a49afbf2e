"""The saturate PID file: one live daemon per repository, a stale file taken over.

The file is written atomically (a temporary file renamed into place) and records the pid, its
start time and the host. An exclusive lock on a companion file, held for the daemon's life and
released by the kernel when it dies, decides who owns the repository; the pid and start time
then say who that is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO

from oxi_core.engine.reaper import process_start_time, same_process_alive, this_host
from oxi_core.errors import AlreadyRunning


class PidFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_suffix(".lock")
        self._lock: IO[str] | None = None
        self.took_over: dict[str, object] | None = None

    def read(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _describe(self, data: dict[str, object] | None) -> str:
        if not data:
            return "another oxi saturate"
        return f"pid {data.get('pid')} on {data.get('host')}, started {data.get('started_at')}"

    def _how_to_stop(self, data: dict[str, object] | None) -> str:
        pid = data.get("pid") if data else None
        if isinstance(pid, int):
            return f"stop it first with `kill -TERM {pid}`; it exits once its workers finish"
        return f"stop the process that holds {self.lock_path} first"

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise AlreadyRunning(
                f"oxi saturate is already running on this repository "
                f"({self._describe(self.read())})",
                hint=self._how_to_stop(self.read()),
            ) from None
        existing = self.read()
        if existing and existing.get("host") == this_host():
            pid = existing.get("pid")
            started = existing.get("started_at_epoch")
            if isinstance(pid, int) and isinstance(started, float) and pid != os.getpid() and (
                same_process_alive(pid, started)
            ):
                handle.close()
                raise AlreadyRunning(
                    f"oxi saturate is already running on this repository "
                    f"({self._describe(existing)})",
                    hint=self._how_to_stop(existing),
                )
        self.took_over = existing
        self._lock = handle
        self._write()

    def _write(self) -> None:
        pid = os.getpid()
        started = process_start_time(pid)
        from datetime import UTC, datetime

        record = {
            "pid": pid,
            "host": this_host(),
            "started_at_epoch": started,
            "started_at": datetime.fromtimestamp(started or 0, UTC).isoformat(),
        }
        temporary = self.path.with_name(f".{self.path.name}.{pid}.tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, self.path)  # atomic: readers see the old file or the new one

    def release(self) -> None:
        data = self.read()
        if data and data.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
