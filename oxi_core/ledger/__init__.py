"""The SQLite ledger: append-only events plus projections, one file per repository."""

from __future__ import annotations

from oxi_core.ledger.ledger import Ledger, NewEvent, Verbatim, stored_json

__all__ = ["Ledger", "NewEvent", "Verbatim", "stored_json"]
