"""Three-layer dedup of judged-worthy candidates, and proposal ids.

- identifier: a candidate (source + identifier) is proposed at most once, ever; and every
  proposal gets the next free id ``T{tier}-A{n}`` (n never reused: roadmap, tasks, proposals);
- temporal: the same signal kind and target within ``temporal_window_days`` is one signal;
- semantic: cosine similarity >= ``semantic_threshold`` with an open roadmap item, a task
  updated in the last ``semantic_window_days``, or a proposal still staged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from oxi_core.auto_improve.store import ProposalStatus
from oxi_core.auto_improve.vectors import VectorIndex
from oxi_core.ledger import Ledger
from oxi_core.models import Candidate, isoformat
from oxi_core.roadmap import Roadmap

_AUTO_ID = re.compile(r"\AT\d+-A(\d+)\Z")


@attrs.frozen
class DedupHit:
    layer: str  # "identifier", "temporal", "semantic"
    against: str  # the proposal, roadmap item or task it duplicates
    detail: str

    def as_json(self) -> dict[str, str]:
        return attrs.asdict(self)


def next_proposal_number(ledger: Ledger, roadmap: Roadmap) -> int:
    """1 + the largest n of any ``T*-A{n}`` in the roadmap, the tasks or the proposals."""
    used = [int(m.group(1)) for item in roadmap.items if (m := _AUTO_ID.match(item.id))]
    used += [int(m.group(1)) for (task_id,) in ledger.query(
        "SELECT id FROM tasks WHERE id GLOB 'T*-A*'") if (m := _AUTO_ID.match(task_id))]
    used += [row[0] for row in ledger.query("SELECT max(n) FROM auto_improve_proposals")
             if row[0] is not None]
    return max(used, default=0) + 1


def identifier_duplicate(ledger: Ledger, candidate: Candidate) -> DedupHit | None:
    rows = ledger.query("SELECT id FROM auto_improve_proposals WHERE candidate_key = ?",
                        (candidate.key,))
    return DedupHit("identifier", rows[0][0], f"{candidate.key} was proposed already") \
        if rows else None


def temporal_duplicate(ledger: Ledger, candidate: Candidate, now: datetime,
                       window_days: float) -> DedupHit | None:
    since = isoformat(now - timedelta(days=window_days))
    rows = ledger.query(
        "SELECT id, emitted_at FROM auto_improve_proposals WHERE target_key = ? "
        "AND emitted_at >= ? ORDER BY emitted_at DESC LIMIT 1", (candidate.target_key, since))
    if not rows:
        return None
    return DedupHit("temporal", rows[0][0],
                    f"{candidate.target_key} was proposed at {rows[0][1]}, within "
                    f"{window_days:g} days")


@attrs.frozen
class OpenWork:
    ref: str  # a roadmap id, a task id, a proposal id
    text: str


def open_work(ledger: Ledger, roadmap: Roadmap, now: datetime,
              window_days: float) -> list[OpenWork]:
    """What a new proposal must not repeat: open roadmap items, tasks updated recently, and
    proposals still staged."""
    work = {item.id: OpenWork(item.id, f"{item.title}\n{item.subtitle}")
            for item in roadmap.open_items}
    since = isoformat(now - timedelta(days=window_days))
    for task_id, title, subtitle in ledger.query(
            "SELECT id, title, subtitle FROM tasks WHERE updated_at >= ?", (since,)):
        work.setdefault(task_id, OpenWork(task_id, f"{title}\n{subtitle}"))
    for proposal_id, title, subtitle in ledger.query(
            "SELECT id, title, subtitle FROM auto_improve_proposals WHERE status = ?",
            (ProposalStatus.STAGED,)):
        work.setdefault(proposal_id, OpenWork(proposal_id, f"{title}\n{subtitle}"))
    return sorted(work.values(), key=lambda w: w.ref)


class SemanticIndex:
    """Open work's vectors; ``check`` finds the closest at or over the threshold. ``add``
    puts a proposal emitted in this scan in, so two candidates of one scan do not pass as
    different."""

    def __init__(self, work: Sequence[OpenWork], embed: Callable[[Sequence[str]], list[bytes]],
                 threshold: float) -> None:
        self.embed = embed
        self.threshold = threshold
        self.refs = [w.ref for w in work]
        self.vectors = list(embed([w.text for w in work]))
        self._index: VectorIndex | None = None

    def _current(self) -> VectorIndex:
        if self._index is None or self._index.size != len(self.vectors):
            if self._index is not None:
                self._index.close()
            self._index = VectorIndex(self.vectors)
        return self._index

    def check(self, vector: bytes) -> DedupHit | None:
        found = self._current().nearest(vector, 1)
        if not found or found[0][1] < self.threshold:
            return None
        index, similarity = found[0]
        return DedupHit("semantic", self.refs[index],
                        f"cosine similarity {similarity:.3f} >= {self.threshold:g}")

    def add(self, ref: str, vector: bytes) -> None:
        self.refs.append(ref)
        self.vectors.append(vector)

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
