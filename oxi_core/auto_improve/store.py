"""Auto-improve's rows in the ledger (migration m010): candidates with what became of them,
staged proposals, and the loop's paused flag. Every change is written with its event."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from oxi_core.ledger import Ledger, Verbatim, stored_json
from oxi_core.ledger import events as ev
from oxi_core.models import Candidate, converter, isoformat, parse_ts

PAUSED_KEY = "auto_improve_paused"


class Status:
    """What became of a candidate. ``new`` and ``held`` are taken up by the next scan."""

    NEW = "new"
    HELD = "held"  # the judge's budget ran out before it: judged next scan
    DROPPED = "dropped"  # prefilter
    UNRANKED = "unranked"  # not in the top_k of the scan that ranked it
    DEDUP = "dedup"
    SCREENED = "screened"
    FABRICATED = "fabricated"
    JUDGED_OUT = "judged_out"
    JUDGE_FAILED = "judge_failed"
    EMITTED = "emitted"
    OPEN = (NEW, HELD)


class ProposalStatus:
    STAGED = "staged"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@attrs.frozen
class Proposal:
    id: str
    n: int
    tier: int
    title: str
    subtitle: str
    body: str
    candidate_key: str
    target_key: str
    status: str
    reason: str
    emitted_at: str
    decided_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


_PROPOSAL_COLUMNS = ", ".join(field.name for field in attrs.fields(Proposal))


def candidate_json(candidate: Candidate) -> dict[str, Any]:
    value: dict[str, Any] = converter.unstructure(candidate)
    return value


def candidate_from_json(text: str) -> Candidate:
    value = json.loads(text)
    published = value.get("published_at")
    value["published_at"] = parse_ts(published) if published else None
    return Candidate(**value)


def record_fetch(ledger: Ledger, source: str, candidates: Sequence[Candidate], *,
                 since: datetime, now: datetime) -> int:
    """Keep a source's candidates (each key once, ever) and its good fetch, in one
    transaction. Returns how many were new."""
    stamp = Verbatim(isoformat(now))
    with ledger.transaction() as conn:
        added = 0
        for candidate in candidates:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO auto_improve_candidates (key, source, identifier, "
                "signal_kind, target_key, candidate, status, first_seen, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (candidate.key, candidate.source, candidate.identifier, candidate.signal_kind,
                 candidate.target_key, stored_json(candidate_json(candidate)),
                 Verbatim(Status.NEW), stamp, stamp))
            added += cursor.rowcount
        ledger.append(ev.AUTO_IMPROVE_SOURCE_FETCHED, payload={
            "source": source, "since": isoformat(since), "fetched_at": isoformat(now),
            "candidates": len(candidates), "new": added})
    return added


def last_fetch(ledger: Ledger, source: str) -> datetime | None:
    rows = ledger.query(
        "SELECT payload FROM events WHERE type = ? AND json_extract(payload, '$.source') = ? "
        "ORDER BY id DESC LIMIT 1", (ev.AUTO_IMPROVE_SOURCE_FETCHED, source))
    return parse_ts(json.loads(rows[0][0])["fetched_at"]) if rows else None


def open_candidates(ledger: Ledger) -> list[Candidate]:
    """Candidates not yet decided (new, or held for budget), oldest first."""
    rows = ledger.query(
        "SELECT candidate FROM auto_improve_candidates WHERE status IN (?, ?) "
        "ORDER BY first_seen, key", Status.OPEN)
    return [candidate_from_json(row[0]) for row in rows]


def set_status(ledger: Ledger, keys: Iterable[str], status: str, *, reason: str = "",
               event: str | None = None, payload: Mapping[str, Any] | None = None,
               proposal_id: str | None = None) -> None:
    """Candidates' new status, and the event that explains it, in one transaction."""
    now = Verbatim(ledger.now_iso())
    with ledger.transaction() as conn:
        conn.executemany(
            "UPDATE auto_improve_candidates SET status = ?, reason = ?, proposal_id = ?, "
            "updated_at = ? WHERE key = ?",
            [(Verbatim(status), reason, proposal_id, now, key) for key in keys])
        if event is not None:
            ledger.append(event, payload=payload)


def proposals(ledger: Ledger, statuses: Sequence[str] | None = None) -> list[Proposal]:
    sql = f"SELECT {_PROPOSAL_COLUMNS} FROM auto_improve_proposals"  # noqa: S608
    params: list[Any] = []
    if statuses is not None:
        sql += f" WHERE status IN ({', '.join('?' * len(statuses))})"
        params += list(statuses)
    rows = ledger.query(sql + " ORDER BY n", params)
    return [Proposal(*row) for row in rows]


def proposal(ledger: Ledger, proposal_id: str) -> Proposal | None:
    rows = ledger.query(
        f"SELECT {_PROPOSAL_COLUMNS} FROM auto_improve_proposals WHERE id = ?",  # noqa: S608
        (proposal_id,))
    return Proposal(*rows[0]) if rows else None


def insert_proposal(ledger: Ledger, proposal: Proposal, payload: Mapping[str, Any]) -> None:
    """Stage a proposal: its row, its candidate's status and EXTERNAL_PROPOSAL_EMITTED."""
    with ledger.transaction() as conn:
        conn.execute(
            f"INSERT INTO auto_improve_proposals ({_PROPOSAL_COLUMNS}) "  # noqa: S608
            f"VALUES ({', '.join('?' * len(attrs.fields(Proposal)))})",
            (Verbatim(proposal.id), proposal.n, proposal.tier, proposal.title,
             proposal.subtitle, proposal.body, proposal.candidate_key, proposal.target_key,
             Verbatim(proposal.status), proposal.reason, Verbatim(proposal.emitted_at),
             proposal.decided_at))
        set_status(ledger, [proposal.candidate_key], Status.EMITTED,
                   event=ev.EXTERNAL_PROPOSAL_EMITTED, payload=payload,
                   proposal_id=proposal.id)


def decide_proposal(ledger: Ledger, proposal_id: str, status: str, reason: str, event: str,
                    payload: Mapping[str, Any]) -> None:
    with ledger.transaction() as conn:
        conn.execute("UPDATE auto_improve_proposals SET status = ?, reason = ?, decided_at = ? "
                     "WHERE id = ?", (Verbatim(status), reason, Verbatim(ledger.now_iso()),
                                      Verbatim(proposal_id)))
        ledger.append(event, payload=payload)


def is_paused(ledger: Ledger) -> bool:
    return ledger.state_get(PAUSED_KEY) is not None


def last_event(ledger: Ledger, event_type: str) -> tuple[str, dict[str, Any]] | None:
    """(ts, payload) of the newest event of that type."""
    found = ledger.events(types=[event_type], newest_first=True, limit=1)
    return (found[0].ts, dict(found[0].payload)) if found else None
