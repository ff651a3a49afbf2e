"""`oxi tick --dry-run`: plan against a snapshot of the ledger, so nothing real is written."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from oxi_core.config import OxiConfig
from oxi_core.ledger import Ledger, driver


def snapshot_ledger(source: Path, dest: Path) -> None:
    """Copy a consistent snapshot through a read-only connection (SQLite's backup API)."""
    sqlite = driver.sqlite_module()
    src = sqlite.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite.connect(str(dest))
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def dry_run_plan(config: OxiConfig) -> dict[str, Any]:
    from oxi_core.engine.engine import Engine

    with tempfile.TemporaryDirectory(prefix="oxi-dry-run-") as folder:
        copy = Path(folder) / "oxi.db"
        if config.paths.ledger.exists():
            snapshot_ledger(config.paths.ledger, copy)
        ledger = Ledger(copy)
        try:
            config.context.use_ledger(ledger)
            return Engine(config, ledger=ledger).plan()
        finally:
            ledger.close()
