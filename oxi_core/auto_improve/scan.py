"""One auto-improve scan: fetch every source (each failing alone), rank, dedup, screen and
judge the best, stage proposals, write the digest, check the loop's health and the watchdog.

Everything that needs a model or the embedding model comes in through ``ScanTools``, so the
scan is the same in tests (fixed embeddings, a scripted judge) and in production.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from oxi_core.auto_improve import store
from oxi_core.auto_improve.corpus import build_corpus
from oxi_core.auto_improve.dedup import (
    DedupHit,
    SemanticIndex,
    identifier_duplicate,
    next_proposal_number,
    open_work,
    temporal_duplicate,
)
from oxi_core.auto_improve.emit import build_proposal, digest_path, emit, sections_for, write_digest
from oxi_core.auto_improve.health import check_health, watchdog
from oxi_core.auto_improve.judge import ProposalJudge, RubricError
from oxi_core.auto_improve.modules import fabricated, named_modules
from oxi_core.auto_improve.ranking import MAX_TEXT, prefilter, rank
from oxi_core.auto_improve.settings import AutoImproveSettings
from oxi_core.auto_improve.store import Proposal, Status
from oxi_core.errors import OxiError, SourceError
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import Candidate, isoformat
from oxi_core.policy import RepoPaths
from oxi_core.roadmap import load_roadmap

Embed = Callable[[Sequence[str]], list[bytes]]
Notify = Callable[[str], None]


@attrs.frozen
class ScanTools:
    """What a scan calls out to: the embedding function and the judge (None: no judge can be
    built, e.g. no inference target; candidates are then held)."""

    embed: Embed
    judge: ProposalJudge | None
    judge_problem: str = ""


@attrs.define
class ScanReport:
    day: str
    scanned_at: str
    skipped: str = ""  # why the scan did nothing (paused, already ran today)
    fetched: dict[str, int] = attrs.field(factory=dict)
    failures: list[dict[str, Any]] = attrs.field(factory=list)
    ranked: int = 0
    emitted: list[Proposal] = attrs.field(factory=list)
    dedup: list[tuple[Candidate, DedupHit]] = attrs.field(factory=list)
    fabricated: list[tuple[Candidate, list[str]]] = attrs.field(factory=list)
    judged_out: list[tuple[Candidate, str]] = attrs.field(factory=list)
    held: list[Candidate] = attrs.field(factory=list)
    held_reason: str = ""
    paused: bool = False
    stalled: bool = False
    digest: Path | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day, "scanned_at": self.scanned_at, "skipped": self.skipped,
            "fetched": self.fetched, "failures": self.failures, "ranked": self.ranked,
            "emitted": [p.as_json() for p in self.emitted],
            "dedup": [{"candidate": c.key, **hit.as_json()} for c, hit in self.dedup],
            "fabricated": [{"candidate": c.key, "modules": names}
                           for c, names in self.fabricated],
            "judged_out": [{"candidate": c.key, "reason": why} for c, why in self.judged_out],
            "held": [c.key for c in self.held], "held_reason": self.held_reason,
            "paused": self.paused, "stalled": self.stalled,
            "digest": str(self.digest) if self.digest else None,
        }


def ran_today(ledger: Ledger, day: str) -> bool:
    rows = ledger.query("SELECT 1 FROM events WHERE type = ? AND "
                        "json_extract(payload, '$.day') = ? LIMIT 1",
                        (ev.AUTO_IMPROVE_SCAN_FINISHED, day))
    return bool(rows)


def fetch_sources(ledger: Ledger, sources: Mapping[str, Any], unbuilt: Mapping[str, OxiError],
                  settings: AutoImproveSettings, now: datetime, report: ScanReport) -> None:
    """Each source fetches on its own: an exception is its AUTO_IMPROVE_SOURCE_FAILED event
    with the reason, and the others go on."""
    names = list(settings.sources) if settings.sources is not None else sorted(
        {*sources, *(key.split(".", 1)[1] for key in unbuilt if key.startswith("sources."))})
    for name in names:
        source = sources.get(name)
        since = store.last_fetch(ledger, name) or now - timedelta(days=settings.lookback_days)
        try:
            if source is None:
                problem = unbuilt.get(f"sources.{name}")
                raise SourceError(str(problem) if problem else "not built", source=name)
            found = list(source.fetch(since))
            for candidate in found:
                if not isinstance(candidate, Candidate):
                    raise SourceError(f"fetch returned a {type(candidate).__name__}, not a "
                                      "Candidate", source=name)
        except Exception as error:  # any failure of one source is its own, never the scan's
            payload = (error.payload() if isinstance(error, SourceError)
                       else {"source": name, "reason": f"{type(error).__name__}: {error}",
                             "exit_code": None})
            payload["source"] = name
            ledger.append(ev.AUTO_IMPROVE_SOURCE_FAILED, payload=payload)
            report.failures.append(payload)
            continue
        store.record_fetch(ledger, name, found, since=since, now=now)
        report.fetched[name] = len(found)


def scan(*, ledger: Ledger, paths: RepoPaths, settings: AutoImproveSettings,
         sources: Mapping[str, Any], tools: Callable[[], ScanTools], forge: Any,
         notify: Notify, now: datetime, unbuilt: Mapping[str, OxiError] | None = None,
         once_per_day: bool = False) -> ScanReport:
    day = now.date().isoformat()
    report = ScanReport(day=day, scanned_at=isoformat(now))
    if store.is_paused(ledger):
        report.skipped = "auto-improve is paused (oxi auto-improve unpause)"
    elif once_per_day and ran_today(ledger, day):
        report.skipped = f"a scan already finished on {day}"
    if report.skipped:
        ledger.append(ev.AUTO_IMPROVE_SCAN_SKIPPED, payload={"day": day,
                                                             "reason": report.skipped})
        return report
    ledger.append(ev.AUTO_IMPROVE_SCAN_STARTED, payload={"day": day})
    report.stalled = watchdog(ledger, settings, now, notify)
    fetch_sources(ledger, sources, unbuilt or {}, settings, now, report)

    pending = store.open_candidates(ledger)
    kept, dropped = prefilter(pending, max_per_source=settings.max_candidates_per_source)
    for candidate, why in dropped:
        store.set_status(ledger, [candidate.key], Status.DROPPED, reason=why)
    if kept:
        _judge_best(ledger, paths, settings, kept, tools(), forge, now, report)
    report.paused = check_health(ledger, settings, now, notify)
    report.digest = write_digest(
        digest_path(paths, day), day=day, scanned_at=report.scanned_at,
        sections=sections_for(report), summary=_summary(report))
    ledger.append(ev.AUTO_IMPROVE_SCAN_FINISHED, payload={
        "day": day, "digest": str(report.digest), "fetched": report.fetched,
        "failures": len(report.failures), "ranked": report.ranked,
        "emitted": [p.id for p in report.emitted], "dedup": len(report.dedup),
        "fabricated": len(report.fabricated), "held": len(report.held),
        "paused": report.paused})
    return report


def _summary(report: ScanReport) -> list[str]:
    fetched = ", ".join(f"{name} {count}" for name, count in report.fetched.items()) or "none"
    return [f"fetched: {fetched}", f"ranked: {report.ranked}",
            f"proposals: {len(report.emitted)}", f"source failures: {len(report.failures)}"]


def _judge_best(ledger: Ledger, paths: RepoPaths, settings: AutoImproveSettings,
                kept: Sequence[Candidate], tools: ScanTools, forge: Any, now: datetime,
                report: ScanReport) -> None:
    roadmap = load_roadmap(paths.roadmap)
    corpus = build_corpus(roadmap, paths.repo_root, forge, now, settings.history_days)
    ranked = rank(kept, corpus, tools.embed, settings.top_k)
    report.ranked = len(ranked)
    chosen = {r.candidate.key for r in ranked}
    store.set_status(ledger, [c.key for c in kept if c.key not in chosen], Status.UNRANKED,
                     reason=f"not in the top {settings.top_k}")
    semantic = SemanticIndex(open_work(ledger, roadmap, now, settings.semantic_window_days),
                             tools.embed, settings.semantic_threshold)
    next_n = next_proposal_number(ledger, roadmap)
    try:
        for position, item in enumerate(ranked):
            candidate = item.candidate
            if len(report.emitted) >= settings.max_proposals_per_scan:
                _hold(ledger, report, [r.candidate for r in ranked[position:]],
                      f"{settings.max_proposals_per_scan} proposals emitted; the rest wait "
                      "for the next scan", ev.AUTO_IMPROVE_BUDGET_HELD)
                return
            vector = tools.embed([candidate.text[:MAX_TEXT]])[0]  # as ranking embedded it
            hit = (identifier_duplicate(ledger, candidate)
                   or temporal_duplicate(ledger, candidate, now, settings.temporal_window_days)
                   or semantic.check(vector))
            if hit is not None:
                report.dedup.append((candidate, hit))
                store.set_status(ledger, [candidate.key], Status.DEDUP, reason=hit.detail,
                                 event=ev.EXTERNAL_PROPOSAL_DEDUP_SKIPPED,
                                 payload={"candidate": candidate.key, **hit.as_json()})
                continue
            problem = _hold_reason(tools, ledger)
            if problem:
                _hold(ledger, report, [r.candidate for r in ranked[position:]], problem,
                      ev.AUTO_IMPROVE_BUDGET_HELD)
                return
            try:
                staged = _judge_one(ledger, settings, tools, candidate, item.rank, next_n, now,
                                    report)
            except _StopJudging as stop:
                _hold(ledger, report, [r.candidate for r in ranked[position:]], stop.reason,
                      stop.event, stop.details)
                return
            if staged is not None:
                semantic.add(staged.id, vector)
                next_n += 1
    finally:
        semantic.close()


class _StopJudging(Exception):
    def __init__(self, reason: str, event: str, details: Mapping[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event = event
        self.details = details


def _hold(ledger: Ledger, report: ScanReport, rest: Sequence[Candidate], reason: str,
          event: str, details: Mapping[str, Any] | None = None) -> None:
    report.held += rest
    report.held_reason = reason
    store.set_status(ledger, [c.key for c in rest], Status.HELD, reason=reason, event=event,
                     payload={"reason": reason, "candidates": [c.key for c in rest],
                              **(details or {})})


def _hold_reason(tools: ScanTools, ledger: Ledger) -> str:
    if tools.judge is None:
        return f"no judge: {tools.judge_problem}"
    if not tools.judge.within_cap():
        return (f"auto-improve's daily cap of ${tools.judge.daily_cap_usd:.2f} is spent "
                f"(${tools.judge.spent_today():.4f})")
    return ""


def _judge_one(ledger: Ledger, settings: AutoImproveSettings, tools: ScanTools,
               candidate: Candidate, rank_: int, n: int, now: datetime,
               report: ScanReport) -> Proposal | None:
    from oxi_core.inference.errors import FailureKind, InferenceError

    judge = tools.judge
    assert judge is not None
    try:
        screen = judge.screen(candidate)
        if screen.injection:
            why = f"screened out: {screen.reason}"
            report.judged_out.append((candidate, why))
            store.set_status(ledger, [candidate.key], Status.SCREENED, reason=why,
                             event=ev.EXTERNAL_PROPOSAL_SCREENED_OUT,
                             payload={"candidate": candidate.key, "reason": screen.reason})
            return None
        if not judge.within_cap():
            raise InferenceError("auto-improve's daily cap is spent", kind=FailureKind.BUDGET)
        rubric = judge.judge(candidate)
    except InferenceError as error:
        # Budget refused or the gateway is down: this candidate and the rest wait for the next
        # scan (another call now would fail the same way).
        raise _StopJudging(f"{error.kind}: {error.message}",
                           ev.AUTO_IMPROVE_BUDGET_HELD if error.kind == FailureKind.BUDGET
                           else ev.AUTO_IMPROVE_JUDGE_FAILED, error.as_payload()) from error
    except RubricError as error:
        report.judged_out.append((candidate, f"unreadable judge answer: {error.message}"))
        store.set_status(ledger, [candidate.key], Status.JUDGE_FAILED, reason=error.message,
                         event=ev.AUTO_IMPROVE_JUDGE_FAILED,
                         payload={"candidate": candidate.key, "error": error.message})
        return None
    named = named_modules([*rubric.modules, rubric.rationale, rubric.title, rubric.subtitle])
    missing = fabricated(named)
    if missing or rubric.fabricated_module:
        names = missing or ["(the judge flagged a fabricated module)"]
        report.fabricated.append((candidate, names))
        store.set_status(ledger, [candidate.key], Status.FABRICATED, reason=", ".join(names),
                         event=ev.EXTERNAL_PROPOSAL_REJECTED_FABRICATED,
                         payload={"candidate": candidate.key, "modules": names,
                                  "judge_flagged": rubric.fabricated_module})
        return None
    low = [f"{name} {score} < {least}" for name, score, least in (
        ("relevance", rubric.relevance, settings.min_relevance),
        ("concreteness", rubric.concreteness, settings.min_concreteness)) if score < least]
    if rubric.duplicate or low:
        why = "the judge found it a duplicate" if rubric.duplicate else ", ".join(low)
        report.judged_out.append((candidate, why))
        store.set_status(ledger, [candidate.key], Status.JUDGED_OUT, reason=why,
                         event=ev.EXTERNAL_PROPOSAL_JUDGED_OUT,
                         payload={"candidate": candidate.key, "reason": why,
                                  "rubric": rubric.as_json()})
        return None
    staged = build_proposal(candidate, rubric, n=n, now=now)
    emit(ledger, staged, candidate, rubric, rank_)
    report.emitted.append(staged)
    return staged
