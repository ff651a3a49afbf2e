"""One lock per repository for git operations that write shared state (refs, worktrees, config).

git protects itself with lock files and fails fast when two writers meet ("cannot lock ref",
"could not lock config file"); oxi's workers and several engines share one repository, so they
take turns here instead. A file lock (flock) across processes and threads: each thread holds
it through its own open file, so threads of one process exclude each other as processes do.

Shared holds are for the steps git keeps apart by itself, which may run side by side: a new
worktree on a new branch (`worktree add` writes its own folder under .git/worktrees, its own
index and its own branch, and marks itself locked against `worktree prune` while it does), a
push (the remote's branch, and the one remote-tracking ref for it), removing a worktree whose
work is on the remote (its own folders). Exclusive holds are for whatever reads or writes
what those touch as a whole: a fetch (every remote-tracking ref, FETCH_HEAD), `worktree prune`
and sweeps (every worktree), deleting or re-creating a branch. Re-entrant within a thread: a
hold inside a hold of the same thread runs under the outer one (a shared hold cannot become
exclusive: release it first).
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_registry_lock = threading.Lock()
_locks: dict[Path, RepoLock] = {}


class _Held(threading.local):
    depth = 0
    shared = False


class RepoLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._held = _Held()

    @contextmanager
    def hold(self, *, shared: bool = False) -> Iterator[None]:
        held = self._held
        if held.depth:
            if held.shared and not shared:
                raise RuntimeError(f"an exclusive hold of {self.path} inside a shared one: "
                                   "release the shared hold first")
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a")  # noqa: SIM115 (held across the yield)
        try:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            held.depth, held.shared = 1, shared
            try:
                yield
            finally:
                held.depth, held.shared = 0, False
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()


def repo_lock(state_dir: Path) -> RepoLock:
    """The lock of the repository whose state folder is ``state_dir``."""
    return _lock_at((state_dir / "repo.lock").resolve())


def forge_lock(state_dir: Path) -> RepoLock:
    """The local forge's own lock (its pull requests and merges, in the origin): separate
    from the repository's, so merging never holds up a worktree or a push."""
    return _lock_at((state_dir / "forge.lock").resolve())


def _lock_at(path: Path) -> RepoLock:
    with _registry_lock:
        if path not in _locks:
            _locks[path] = RepoLock(path)
        return _locks[path]
