"""`oxi tick --dry-run`: plan against a snapshot of the ledger, so nothing real is written."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oxi_core.config import OxiConfig
from oxi_core.ledger import Ledger
from oxi_core.ledger.backup import refuse_lost_or_foreign, snapshot

if TYPE_CHECKING:
    from oxi_core.engine.engine import TickReport


def dry_run_plan(config: OxiConfig) -> tuple[TickReport, dict[str, Any]]:
    """What a tick would do, and the status it would start from."""
    from oxi_core.engine.engine import Engine
    from oxi_core.status import status_report

    with tempfile.TemporaryDirectory(prefix="oxi-dry-run-") as folder:
        copy = Path(folder) / "oxi.db"
        refuse_lost_or_foreign(config.paths.ledger)  # the copy would look new
        if config.paths.ledger.exists():
            snapshot(config.paths.ledger, copy)
        ledger = Ledger(copy)
        try:
            config.context.use_ledger(ledger)
            return Engine(config, ledger=ledger).plan(), status_report(ledger, recent=0)
        finally:
            ledger.close()
