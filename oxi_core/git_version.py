"""Which git oxi runs, and whether it can merge as the local forge does.

The local forge merges a branch that is not one commit on the base's tip with `git merge-tree
--write-tree`, which git 2.38 brought; an older git stops halfway with its own usage error. The
version is read with one `git --version` per git binary: the answer is kept in the state folder
under the binary's path, size and modification time, so no tick starts a process for it unless
git itself changed.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import attrs

from oxi_core import state_cache
from oxi_core.errors import GitTooOld

MERGE_TREE_VERSION = (2, 38)
CACHE_FILE = "git-version.json"
UPGRADE = ("install git 2.38 or newer and put it first on PATH: Debian 12, Ubuntu 23.04, "
           "Fedora 37, Homebrew and Git for Windows ship one; `git --version` shows which "
           "git oxi runs")


@attrs.frozen
class InstalledGit:
    path: str  # as found on PATH
    said: str  # what `git --version` printed

    @property
    def version(self) -> tuple[int, ...]:
        """(2, 39, 5) for "git version 2.39.5"; () when it said nothing readable."""
        found = re.search(r"(\d+(?:\.\d+)+)", self.said)
        return tuple(int(part) for part in found.group(1).split(".")) if found else ()

    @property
    def shown(self) -> str:
        return ".".join(str(part) for part in self.version) or repr(self.said)


# Versions read by this process, by the binary's `binary_key`.
_read: dict[tuple[str, int, int, int], InstalledGit] = {}


def binary_key() -> tuple[str, int, int, int] | None:
    """The git on PATH as (path, size, mtime, inode): another binary, or the same one
    upgraded, has another key. None when there is no git on PATH."""
    path = shutil.which("git")
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (path, stat.st_size, stat.st_mtime_ns, stat.st_ino)


def installed_git(state_dir: Path | None = None) -> InstalledGit | None:
    """The git on PATH and what its `git --version` says (read once per binary, kept in
    ``state_dir`` when given); None when there is no git on PATH."""
    key = binary_key()
    if key is None:
        return None
    found = _read.get(key)
    if found is None:
        said = state_cache.load(state_dir, CACHE_FILE, list(key))
        found = InstalledGit(key[0], said) if isinstance(said, str) else _ask(key[0])
        _read[key] = found
        state_cache.save(state_dir, CACHE_FILE, list(key), found.said)
    return found


def _ask(path: str) -> InstalledGit:
    import subprocess

    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"},
                              check=False)
        said = done.stdout.strip() or done.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        said = f"{type(error).__name__}: {error}"
    return InstalledGit(path, said)


def merge_tree_problem(state_dir: Path | None = None) -> str | None:
    """Why the local forge cannot merge with the git on PATH, or None when it can (or there is
    no git, or its version cannot be read: other checks say so)."""
    found = installed_git(state_dir)
    if found is None or not found.version or found.version >= MERGE_TREE_VERSION:
        return None
    needed = ".".join(str(part) for part in MERGE_TREE_VERSION)
    return (f"git {found.shown} ({found.path}) is too old for the local forge: it merges with "
            f"`git merge-tree --write-tree`, which needs git {needed} or newer")


def require_merge_tree(state_dir: Path | None = None) -> None:
    """Raise GitTooOld (a setup error: the engine pauses, nothing is lost) before a merge the
    git on PATH could not finish."""
    problem = merge_tree_problem(state_dir)
    if problem is not None:
        raise GitTooOld(problem, hint=UPGRADE)
