"""Proposals: staging one (EXTERNAL_PROPOSAL_EMITTED), the operator's accept (the item written
into roadmap.md through oxi_core.roadmap) and reject (with why), and the day's Markdown digest
``.oxi/auto-improve-digest-YYYY-MM-DD.md`` (paths from the repository adapter)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from oxi_core.auto_improve.judge import Rubric
from oxi_core.auto_improve.store import (
    Proposal,
    ProposalStatus,
    decide_proposal,
    insert_proposal,
    proposal,
)
from oxi_core.errors import OxiError
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import Candidate, isoformat
from oxi_core.policy import RepoPaths
from oxi_core.roadmap import NewItem, insert_item, read_roadmap_text

DIGEST_SECTIONS = ("Top proposals", "Skipped (dedup)", "Skipped (fabricated)",
                   "Source failures", "Budget held")


def _first_sentence(text: str) -> str:
    sentence = text.strip().split(". ")[0].strip().rstrip(".")
    return sentence[:160] or "Proposed by auto-improve"


def build_proposal(candidate: Candidate, rubric: Rubric, *, n: int, now: datetime) -> Proposal:
    tier = rubric.suggested_tier
    quoted = "\n".join(f"> {line}" for line in candidate.summary.strip().splitlines()[:8])
    body = "\n".join(part for part in (
        f"Proposed by auto-improve from `{candidate.source}`"
        + (f": {candidate.url}" if candidate.url else "") + ".",
        "",
        rubric.rationale,
        "",
        f"Relevance {rubric.relevance}/5, concreteness {rubric.concreteness}/5."
        + (f" Modules: {', '.join(rubric.modules)}." if rubric.modules else ""),
        *(("", "What the source said (untrusted):", quoted) if quoted else ()),
    ))
    return Proposal(
        id=f"T{tier}-A{n}", n=n, tier=tier,
        title=(rubric.title or candidate.title).strip()[:120],
        subtitle=rubric.subtitle or _first_sentence(rubric.rationale),
        body=body, candidate_key=candidate.key, target_key=candidate.target_key,
        status=ProposalStatus.STAGED, reason="", emitted_at=isoformat(now))


def emit(ledger: Ledger, staged: Proposal, candidate: Candidate, rubric: Rubric,
         rank: int) -> None:
    insert_proposal(ledger, staged, {
        "proposal_id": staged.id, "tier": staged.tier, "title": staged.title,
        "candidate": candidate.key, "source": candidate.source, "url": candidate.url,
        "signal_kind": candidate.signal_kind, "target": candidate.target_key, "rank": rank,
        "rubric": rubric.as_json()})


def accept(ledger: Ledger, paths: RepoPaths, proposal_id: str) -> Proposal:
    """Write the staged proposal into roadmap.md as a canonical item; then record it."""
    found = _staged(ledger, proposal_id)
    text = read_roadmap_text(paths.roadmap)
    updated = insert_item(text, NewItem(found.id, found.title, found.subtitle, found.body))
    paths.roadmap.write_text(updated, encoding="utf-8")
    decide_proposal(ledger, found.id, ProposalStatus.ACCEPTED, "", ev.EXTERNAL_PROPOSAL_ACCEPTED,
                    {"proposal_id": found.id, "roadmap": str(paths.roadmap)})
    return attrs.evolve(found, status=ProposalStatus.ACCEPTED)


def reject(ledger: Ledger, proposal_id: str, reason: str) -> Proposal:
    if not reason.strip():
        raise OxiError("a rejection needs a reason", hint="pass --reason 'why not'")
    found = _staged(ledger, proposal_id)
    decide_proposal(ledger, found.id, ProposalStatus.REJECTED, reason.strip(),
                    ev.EXTERNAL_PROPOSAL_REJECTED,
                    {"proposal_id": found.id, "reason": reason.strip()})
    return attrs.evolve(found, status=ProposalStatus.REJECTED, reason=reason.strip())


def _staged(ledger: Ledger, proposal_id: str) -> Proposal:
    found = proposal(ledger, proposal_id)
    if found is None:
        raise OxiError(f"no proposal {proposal_id}",
                       hint="`oxi auto-improve proposals` lists the staged ones")
    if found.status != ProposalStatus.STAGED:
        raise OxiError(f"proposal {proposal_id} was {found.status} already"
                       + (f" ({found.reason})" if found.reason else ""))
    return found


# -- the digest ----------------------------------------------------------------------------


def digest_path(paths: RepoPaths, day: str) -> Path:
    return paths.state_dir / f"auto-improve-digest-{day}.md"


def _line(text: str) -> str:
    """Untrusted text on one line, without markup that could fake a section."""
    return " ".join(text.replace("#", "").replace("`", "'").split())[:200]


def write_digest(path: Path, *, day: str, scanned_at: str,
                 sections: Mapping[str, Sequence[str]], summary: Sequence[str]) -> Path:
    """The digest: a summary, then every section of DIGEST_SECTIONS (``none`` when empty)."""
    lines = [f"# auto-improve digest {day}", "", f"Scan at {scanned_at}.", ""]
    lines += [f"- {_line(item)}" for item in summary]
    for title in DIGEST_SECTIONS + tuple(t for t in sections if t not in DIGEST_SECTIONS):
        lines += ["", f"## {title}", ""]
        entries = sections.get(title, ())
        lines += [f"- {_line(entry)}" for entry in entries] if entries else ["none"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def describe(candidate: Candidate, extra: str = "") -> str:
    where = f" <{candidate.url}>" if candidate.url else ""
    return f"{candidate.title} ({candidate.source}){where}" + (f": {extra}" if extra else "")


def sections_for(report: Any) -> dict[str, list[str]]:
    """The digest's sections from a scan report (scan.ScanReport)."""
    return {
        "Top proposals": [f"{p.id} · {p.title}: {p.subtitle}" for p in report.emitted],
        "Skipped (dedup)": [describe(c, f"{hit.layer} duplicate of {hit.against} "
                                        f"({hit.detail})") for c, hit in report.dedup],
        "Skipped (fabricated)": [describe(c, "names " + ", ".join(names))
                                 for c, names in report.fabricated],
        "Source failures": [f"{f.get('source')}: {f.get('reason')}"
                            + (f" (exit {f['exit_code']})" if f.get("exit_code") is not None
                               else "") for f in report.failures],
        "Budget held": [describe(c, report.held_reason) for c in report.held],
        "Skipped (judged out)": [describe(c, why) for c, why in report.judged_out],
    }
