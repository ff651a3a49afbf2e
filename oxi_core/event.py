"""A ledger event as read back, and the timestamps oxi stores: all the ledger and `oxi status`
need, without building the value types of oxi_core.models (which re-exports these)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs


@attrs.frozen
class Event:
    """One row of the ledger's append-only `events` table."""

    id: int
    ts: str
    type: str
    task_id: str | None = None
    session_id: str | None = None
    cost_usd: float = 0.0
    payload: Mapping[str, Any] = attrs.field(factory=dict)


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """Timestamps are stored as ISO-8601 UTC with microseconds, so they sort as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)
