"""Copies of the ledger through SQLite's online backup API, and the checks that keep a lost
ledger from being mistaken for a new one.

A backup is a consistent snapshot even while an engine writes (the API copies pages under the
database's own locks), so `oxi ledger backup` needs no pause, and a migration copies the ledger
aside before it changes its shape.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oxi_core.errors import LedgerError
from oxi_core.ledger import driver

# The ledger's own files beside it: SQLite's write-ahead log, its index, a rollback journal.
SIDE_FILES = ("-wal", "-shm", "-journal")
BACKUPS_FOLDER = "backups"


def open_read_only(path: Path) -> Any:
    """A connection that can neither write nor create ``path`` (nor switch its journal)."""
    return driver.connect_read_only(path)


def copy_database(source: Any, dest: Path) -> None:
    """Copy the open connection ``source`` into a new file ``dest`` (the online backup API)."""
    target = driver.sqlite_module().connect(str(dest))
    try:
        source.backup(target)
    finally:
        target.close()


def snapshot(source: Path, dest: Path) -> None:
    """Copy the ledger at ``source`` into ``dest`` through a read-only connection."""
    conn = open_read_only(source)
    try:
        copy_database(conn, dest)
    finally:
        conn.close()


def table_names(path: Path) -> set[str]:
    """The tables of the database at ``path``, read without writing to it."""
    conn = open_read_only(path)
    try:
        return {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def other_state(path: Path) -> list[str]:
    """What the ledger's folder holds besides the ledger's own files (worktrees, locks, pid
    files, backups): the signs that oxi has run here before."""
    own = {path.name, *(path.name + suffix for suffix in SIDE_FILES)}
    if not path.parent.is_dir():
        return []
    return sorted(entry.name + ("/" if entry.is_dir() else "")
                  for entry in path.parent.iterdir() if entry.name not in own)


def refuse_lost_or_foreign(path: Path) -> None:
    """Refuse a ledger file that exists but is not an oxi ledger, or is empty while its folder
    shows oxi ran here: opening it would start a new ledger, and a new ledger is blind to the
    work already dispatched (it would run it again and lose track of open pull requests)."""
    if not path.exists():
        return  # a new ledger: the engine reconciles it with the base branch first
    tables = table_names(path)
    if "_migrations" in tables:
        return
    if tables:
        raise LedgerError(
            f"{path} is not an oxi ledger: it holds the tables {', '.join(sorted(tables))} and "
            "none of oxi's",
            hint="move this file away; oxi keeps its ledger in the adapter's state folder",
        )
    state = other_state(path)
    if state:
        raise LedgerError(
            f"the ledger {path} is empty, but {path.parent} holds oxi's state "
            f"({', '.join(state)}): the ledger was emptied or replaced, and a new one would "
            "run merged work again",
            hint=("restore a backup with `oxi ledger restore BACKUP` (`oxi ledger backup PATH` "
                  f"makes one), or delete {path} to start a new ledger on purpose: a new ledger "
                  "first records as merged every item its base branch has merged"),
        )


def backup_before_migrating(conn: Any, path: Path, migration: str) -> Path:
    """Copy the ledger into ``backups/`` beside it before ``migration`` changes it."""
    folder = path.parent / BACKUPS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dest = folder / f"{path.stem}-{stamp}-{os.getpid()}-before-{migration}{path.suffix}"
    copy_database(conn, dest)
    return dest


def restore(backup: Path, path: Path) -> None:
    """Replace the ledger at ``path`` with ``backup`` (an oxi ledger), atomically: the copy is
    made beside it and renamed over it, and the old ledger's log files are removed first so
    SQLite cannot replay them onto the restored file."""
    if not backup.is_file():
        raise LedgerError(f"no such backup {backup}",
                          hint="name a file that `oxi ledger backup PATH` wrote")
    try:
        tables = table_names(backup)
    except driver.sqlite_module().DatabaseError as error:
        raise LedgerError(f"{backup} is not a SQLite database ({error})",
                          hint="name a file that `oxi ledger backup PATH` wrote") from error
    if "_migrations" not in tables:
        raise LedgerError(f"{backup} is not an oxi ledger",
                          hint="name a file that `oxi ledger backup PATH` wrote")
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.restoring-{os.getpid()}")
    staged.unlink(missing_ok=True)
    snapshot(backup, staged)
    for suffix in SIDE_FILES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(staged, path)
