"""Build droppings: what tools leave in a working tree (bytecode, test and type-checker caches,
installed dependencies). They are never work: oxi does not commit them for an agent, and a
worktree that holds nothing else loses nothing when it is removed.

Only untracked files count as droppings: a change to a file the repository tracks is work,
whatever its name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

# Folders that only tools write, anywhere in the tree.
DROPPING_FOLDERS = frozenset({
    "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".tox", ".nox",
    ".venv", "node_modules", "htmlcov",
})
DROPPING_SUFFIXES = (".pyc", ".pyo")
_EGG_INFO = ".egg-info"


def _is_dropping_folder(name: str) -> bool:
    return name in DROPPING_FOLDERS or name.endswith(_EGG_INFO)


def _is_dropping_file(name: str) -> bool:
    return name.endswith(DROPPING_SUFFIXES) or name == ".coverage" or (
        name.startswith(".coverage."))


def dropping_root(path: str) -> str | None:
    """The part of ``path`` (relative, as git prints it) that is a dropping: its first folder
    that only tools write, or the file itself; None when it is not a dropping."""
    parts = PurePosixPath(path.rstrip("/")).parts
    for index, part in enumerate(parts[:-1]):
        if _is_dropping_folder(part):
            return "/".join(parts[: index + 1])
    if parts and (_is_dropping_file(parts[-1]) or (
            path.endswith("/") and _is_dropping_folder(parts[-1]))):
        return "/".join(parts)
    return None


def split_droppings(untracked: Iterable[str]) -> tuple[list[str], list[str]]:
    """(untracked paths that are work, the dropping roots among the others, each once)."""
    work: list[str] = []
    roots: dict[str, None] = {}
    for path in untracked:
        root = dropping_root(path)
        if root is None:
            work.append(path)
        else:
            roots[root] = None
    return work, list(roots)


# -- droppings as git's own excludes ------------------------------------------------------------

EXCLUDES_FILE = "droppings.gitignore"


def ignore_patterns() -> list[str]:
    """The droppings as gitignore patterns, which (like the rule above) never apply to a file
    the repository tracks. A file pattern is undone for folders: `x.pyc/` is not a dropping."""
    folders = [f"{name}/" for name in sorted(DROPPING_FOLDERS)] + [f"*{_EGG_INFO}/"]
    files = [f"*{suffix}" for suffix in DROPPING_SUFFIXES] + [".coverage", ".coverage.*"]
    return [*folders, *files, *(f"!{pattern}/" for pattern in files)]


def excludes_file(state_dir: Path, configured: str | None) -> Path | None:
    """A file for `git -c core.excludesFile=<it>`: what git excludes through that setting
    already (``configured``, the repository's core.excludesFile, else git's default one),
    then the droppings. Rewritten only when that changed. None when git's own file cannot be
    mirrored (named relative to where git runs, `~/` without HOME, unreadable) or this one
    cannot be written: the caller then leaves droppings out its own way."""
    known, own = _user_excludes(configured)
    if not known:
        return None
    text = ""
    if own is not None:
        try:
            text = own.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            pass  # git reads nothing there either
        except OSError:
            return None
    # git skips a byte-order mark at the start of the file only: here it would not be.
    text = text.removeprefix("\ufeff")
    content = "\n".join([
        f"# Written by oxi for `git add` in its worktrees: {own or 'no excludes file'}, then "
        "build droppings.", text.rstrip("\n"), "# droppings (oxi_core/engine/droppings.py)",
        *ignore_patterns(), "",
    ])
    target = state_dir / EXCLUDES_FILE
    try:
        if target.read_text(encoding="utf-8", errors="surrogateescape") == content:
            return target
    except OSError:
        pass  # none yet
    return target if _replace(target, content) else None


def _replace(target: Path, content: str) -> bool:
    """Write ``target`` whole or not at all (another worker may be reading it)."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile("w", dir=target.parent, prefix=f".{target.name}.",
                                         encoding="utf-8", errors="surrogateescape",
                                         delete=False) as partial:
            partial.write(content)
        os.replace(partial.name, target)
    except OSError:
        with contextlib.suppress(OSError, NameError):
            os.unlink(partial.name)
        return False
    return True


def _user_excludes(configured: str | None) -> tuple[bool, Path | None]:
    """(whether oxi can name it, the file) git reads through core.excludesFile, as git finds
    it: ``configured`` with `~/` and `~user/` expanded, else $XDG_CONFIG_HOME/git/ignore,
    else $HOME/.config/git/ignore, else none (no HOME)."""
    environ = os.environ
    if configured is None:
        if environ.get("XDG_CONFIG_HOME"):
            return True, Path(environ["XDG_CONFIG_HOME"]) / "git" / "ignore"
        home = environ.get("HOME")
        return True, None if home is None else Path(f"{home}/.config/git/ignore")
    if configured == "~" or configured.startswith("~/"):
        home = environ.get("HOME")
        return (False, None) if home is None else (True, Path(home + configured[1:]))
    if configured.startswith("~"):
        expanded = Path(configured).expanduser()  # ~user/: the password database, as git
        return (True, expanded) if expanded.is_absolute() else (False, None)
    return (True, Path(configured)) if os.path.isabs(configured) else (False, None)
