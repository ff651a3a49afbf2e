"""Where the last ingest pass left the tasks: what every tick reads first, and all an idle one
needs of ingest (oxi_core/engine/ingest.py, imported when there is something to ingest)."""

from __future__ import annotations

import json

import attrs

from oxi_core.ledger import Ledger

# Where the last pass that wrote something left its mark, for the next process to start from.
INGEST_MARK_KEY = "ingest_mark"


@attrs.frozen
class IngestMark:
    """At ``revision`` (Ledger.tasks_revision) every task agreed with the roadmap whose bytes
    hash to ``digest``: only tasks changed since need diffing against those same bytes.
    ``warnings``: those bytes' warnings as (line, message) (None when not known), so that a
    tick with nothing to ingest need not parse the roadmap to log them."""

    digest: str
    revision: int
    deleted: int
    warnings: tuple[tuple[int, str], ...] | None = None

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> IngestMark | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            warnings = data.get("warnings")
            return cls(str(data["digest"]), int(data["revision"]), int(data["deleted"]),
                       None if warnings is None else tuple(
                           (int(line), str(message)) for line, message in warnings))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None  # unreadable: the next pass diffs everything


def stored_mark(ledger: Ledger) -> IngestMark | None:
    return IngestMark.from_json(ledger.state_get(INGEST_MARK_KEY))
