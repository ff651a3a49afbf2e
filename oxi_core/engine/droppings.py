"""Build droppings: what tools leave in a working tree (bytecode, test and type-checker caches,
installed dependencies). They are never work: oxi does not commit them for an agent, and a
worktree that holds nothing else loses nothing when it is removed.

Only untracked files count as droppings: a change to a file the repository tracks is work,
whatever its name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

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
