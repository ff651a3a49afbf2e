"""The parts of a repository's git configuration oxi reads, kept between ticks.

oxi reads the commit identity (user.name, user.email), the remotes' URLs, whether URLs are
rewritten (url.*) and the excludes file (core.excludesFile: delivery adds the droppings to
it). One `git config --list --show-origin -z` answers, and the answer is kept in
the state folder under everything git read it from: each file that contributed (included ones
too) and each standard place that could (system, global, the repository's config and
config.worktree, present or not), with its size, times and inode; the git binary; the
environment variables that change what git reads; the folder asked about. Any change there is
another key, so git is asked again. Not kept: a configuration with conditional includes
(includeIf reads the branch or the path), a repository found through GIT_DIR or from a
subfolder, a file written in the last seconds (an edit within the file system's timestamp
granularity would keep its time), or values that look like credentials.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from oxi_core import state_cache
from oxi_core.git_version import binary_key

CACHE_FILE = "git-config.json"
# A file changed more recently than this when the answer is read is not trusted to show a
# further change in its stat (same size, same times): the answer is not kept. Whole seconds
# where the file system keeps whole seconds (ext3, HFS+, FAT keeps two), else the kernel's
# clock tick (at most 10 ms) with a margin.
RACY_S = 2.0
RACY_FINE_S = 0.1
# What oxi reads from the configuration; nothing else is kept, in memory or on disk.
_READ = re.compile(r"user\.name|user\.email|remote\..*\.url|url\..*|core\.excludesfile",
                   re.DOTALL)
# A URL carrying a password (https://user:token@host/...).
_PASSWORD_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")


def read_config(cwd: Path, state_dir: Path | None) -> dict[str, str]:
    """What oxi reads of the configuration git sees in ``cwd`` (the last value of a key
    wins), from ``state_dir`` when git would read the same, else from git."""
    from oxi_core import git

    places = _standard_places(cwd)
    if places is not None:
        kept = _kept(state_dir, cwd, places)
        if kept is not None:
            return kept
    done = git.git(["config", "--list", "--show-origin", "-z"], cwd, check=False)
    listing = done.stdout
    found: dict[str, str] = {}
    # An error (a config file git cannot parse) is not kept: it says so again next time.
    sources: list[str] | None = [] if places is not None and done.returncode == 0 else None
    parts = listing.split("\0")
    for origin, entry in zip(parts[0::2], parts[1::2], strict=False):
        key, _, value = entry.partition("\n")
        if not key:
            continue
        if _READ.fullmatch(key):
            found[key] = value
        if sources is not None:
            sources = _add_sources(sources, cwd, origin, key, value)
    if places is not None and sources is not None:
        _keep(state_dir, cwd, [*places, *sources], found)
    return found


def _add_sources(sources: list[str], cwd: Path, origin: str, key: str,
                 value: str) -> list[str] | None:
    """``sources`` with the file ``origin`` names and the file an include.path names; None
    when the answer cannot be kept (a conditional include, an include git resolves from a
    place oxi does not know)."""
    if key.startswith("includeif."):
        return None
    origin_file = Path(origin[len("file:"):]) if origin.startswith("file:") else None
    if origin_file is not None:
        sources.append(str(cwd / origin_file))
    if key == "include.path":
        if value.startswith("~/"):
            sources.append(str(Path(os.environ.get("HOME", "")) / value[2:]))
        elif os.path.isabs(value):
            sources.append(value)
        elif origin_file is not None:
            sources.append(str((cwd / origin_file).parent / value))
        else:
            return None
    return sources


def _standard_places(cwd: Path) -> list[str] | None:
    """Every file git could read configuration from in ``cwd`` before includes, present or
    not; None when the repository is not found the plain way (``cwd/.git``)."""
    from oxi_core.git import worktree_git_dir

    dot_git = cwd / ".git"
    git_dir = worktree_git_dir(cwd)  # (None when GIT_DIR and the like point elsewhere)
    if git_dir is None:
        return None
    common = git_dir
    if git_dir != dot_git:  # a linked worktree: the repository's config is in its common dir
        try:
            common_file = git_dir / "commondir"
            if common_file.exists():
                common = git_dir / common_file.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
    home = Path(os.environ.get("HOME", "~"))
    xdg = os.environ.get("XDG_CONFIG_HOME")
    places = [
        "/etc/gitconfig",
        os.environ.get("GIT_CONFIG_SYSTEM", ""),
        os.environ.get("GIT_CONFIG_GLOBAL", ""),
        os.environ.get("GIT_CONFIG", ""),
        str(Path(xdg) / "git" / "config") if xdg else str(home / ".config" / "git" / "config"),
        str(home / ".gitconfig"),
        # .git itself when it is a file naming the git folder (a directory's times move
        # with every ref and index write: what it holds is watched instead)
        str(dot_git) if git_dir != dot_git else "",
        str(git_dir / "commondir"), str(common / "config"),
        str(git_dir / "config.worktree"),
    ]
    found = shutil.which("git")
    if found is not None:  # a git built with its own prefix reads $(prefix)/etc/gitconfig
        places.append(str(Path(os.path.realpath(found)).parent.parent / "etc" / "gitconfig"))
    return [place for place in places if place]


def _environment() -> list[list[str]]:
    """The variables that change what git reads (every GIT_*: GIT_CONFIG_COUNT and its
    KEY_n/VALUE_n, GIT_CONFIG_PARAMETERS, GIT_CONFIG_NOSYSTEM, ...; HOME, XDG_CONFIG_HOME)."""
    return sorted([name, value] for name, value in os.environ.items()
                  if name.startswith("GIT_") or name in ("HOME", "XDG_CONFIG_HOME"))


def _stats(paths: Iterable[str]) -> list[list[Any]] | None:
    """Each file's identity (None for a missing one); None when one changed too recently
    for its stat to show a further change."""
    now = time.time_ns()
    stats: list[list[Any]] = []
    for path in dict.fromkeys(paths):  # in order, once each
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            stats.append([path, None])
            continue
        except OSError:
            return None
        changed = max(stat.st_mtime_ns, stat.st_ctime_ns)
        fine = stat.st_mtime_ns % 10**9 or stat.st_ctime_ns % 10**9
        if changed > now - int((RACY_FINE_S if fine else RACY_S) * 1e9):
            return None
        stats.append([path, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino])
    return stats


def _key(cwd: Path, files: list[list[Any]]) -> dict[str, Any]:
    binary = binary_key()
    # (What is read is part of the key: an answer kept before a key was read lacks it.)
    return {"cwd": str(cwd), "read": _READ.pattern, "git": list(binary) if binary else None,
            "environment": _environment(), "files": files}


def _kept(state_dir: Path | None, cwd: Path, places: list[str]) -> dict[str, str] | None:
    stored = state_cache.stored_key(state_dir, CACHE_FILE)
    if not isinstance(stored, dict):
        return None  # none yet: ask git
    try:
        paths = [entry[0] for entry in stored["files"]]
    except (KeyError, TypeError, IndexError):
        return None  # none yet, or written by something else: ask git
    if not all(isinstance(path, str) for path in paths) or not set(places) <= set(paths):
        return None
    files = _stats(paths)
    kept = state_cache.load(state_dir, CACHE_FILE, _key(cwd, files)) if files else None
    if not isinstance(kept, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in kept.items()):
        return None
    return kept


def _keep(state_dir: Path | None, cwd: Path, paths: list[str], found: dict[str, str]) -> None:
    from oxi_core.log import redact_text

    for text in (*found, *found.values()):
        if redact_text(text) != text or _PASSWORD_IN_URL.search(text):
            return  # credentials stay in git's own files
    files = _stats(paths)
    if files is not None:
        state_cache.save(state_dir, CACHE_FILE, _key(cwd, files), found)
