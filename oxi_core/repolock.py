"""One lock per repository for git operations that write shared state (refs, worktrees, config).

git protects itself with lock files and fails fast when two writers meet ("cannot lock ref",
"could not lock config file"); oxi's workers and several engines share one repository, so they
take turns here instead. Re-entrant within a thread; a file lock across processes.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_registry_lock = threading.Lock()
_locks: dict[Path, RepoLock] = {}


class RepoLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._handle: IO[str] | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a")  # noqa: SIM115 (held across the yield)
                fcntl.flock(self._handle, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._handle is not None:
                    fcntl.flock(self._handle, fcntl.LOCK_UN)
                    self._handle.close()
                    self._handle = None


def repo_lock(state_dir: Path) -> RepoLock:
    path = (state_dir / "repo.lock").resolve()
    with _registry_lock:
        if path not in _locks:
            _locks[path] = RepoLock(path)
        return _locks[path]
