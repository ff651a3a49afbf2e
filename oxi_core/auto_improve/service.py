"""Auto-improve wired to a loaded oxi.toml: the real embedding model and cache, the judge on
the routed inference path, notifications through the configured notifiers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from oxi_core.auto_improve.embeddings import (
    CACHE_FILE,
    EmbeddingCache,
    FastEmbedder,
    model_folder,
)
from oxi_core.auto_improve.judge import ROLES, ProposalJudge
from oxi_core.auto_improve.scan import Embed, ScanReport, ScanTools, scan
from oxi_core.models import InferenceResult, utcnow

if TYPE_CHECKING:
    from oxi_core.auto_improve.settings import AutoImproveSettings
    from oxi_core.config import OxiConfig
    from oxi_core.ledger import Ledger


def notifier_for(config: OxiConfig, ledger: Ledger) -> Any:
    """``notify(event_type)``: the newest event of that type to every configured notifier."""
    from oxi_core.builtins.notifiers import NOTIFY_EVENT_TYPES, deliver

    def notify(event_type: str) -> None:
        found = ledger.events(types=[event_type], newest_first=True, limit=1)
        if found and event_type in NOTIFY_EVENT_TYPES:
            deliver(config.instances["notifiers"], ledger, found[0])

    return notify


def spent_today(ledger: Ledger) -> float:
    """What auto-improve's roles (judge, screen) spent today, from the ledger's costed calls."""
    from oxi_core.inference.calls import role_spend_today

    return sum(role_spend_today(ledger, role) for role in ROLES)


def status_report(ledger: Ledger, settings: AutoImproveSettings,
                  sources: Sequence[str]) -> dict[str, Any]:
    """`oxi auto-improve status` (and the dashboard's panel): paused or not, the last scan and
    its digest, acceptance per health window, staged proposals, today's spend and cap."""
    from oxi_core.auto_improve import store
    from oxi_core.auto_improve.health import paused_reason, windows
    from oxi_core.ledger import events as ev

    recent, previous = windows(ledger, ledger.now(), settings)
    last_scan = store.last_event(ledger, ev.AUTO_IMPROVE_SCAN_FINISHED)
    last_emitted = store.last_event(ledger, ev.EXTERNAL_PROPOSAL_EMITTED)
    return {
        "paused": paused_reason(ledger),
        "last_scan": last_scan[0] if last_scan else None,
        "last_digest": last_scan[1].get("digest") if last_scan else None,
        "last_emitted": last_emitted[0] if last_emitted else None,
        "staged": len(store.proposals(ledger, [store.ProposalStatus.STAGED])),
        "acceptance": [recent.as_json(), previous.as_json()],
        "acceptance_threshold": settings.acceptance_threshold,
        "spent_today_usd": round(spent_today(ledger), 6),
        "daily_cap_usd": settings.daily_cap_usd,
        "sources": list(sources),
    }


def build_judge(config: OxiConfig, ledger: Ledger) -> ProposalJudge:
    from oxi_core.auto_improve.modules import real_modules
    from oxi_core.inference.calls import complete_for_role_sync
    from oxi_core.roadmap import load_roadmap

    def complete(role: str, messages: Sequence[Any], max_tokens: int) -> InferenceResult:
        return complete_for_role_sync(config, ledger, role, messages, max_tokens=max_tokens)

    roadmap = load_roadmap(config.paths.roadmap)
    modules = sorted(m for m in real_modules() if ".testing" not in m)
    return ProposalJudge(complete, lambda: spent_today(ledger),
                         config.auto_improve.daily_cap_usd,
                         roadmap_titles=[f"{i.id} · {i.title}" for i in roadmap.open_items],
                         modules=modules)


def build_embed(config: OxiConfig) -> tuple[Embed, EmbeddingCache]:
    state_dir = config.paths.state_dir
    embedder = FastEmbedder(model_folder(state_dir, config.auto_improve.model_dir))
    cache = EmbeddingCache(state_dir / CACHE_FILE)
    return (lambda texts: cache.vectors(texts, embedder)), cache


def run_scan(config: OxiConfig, ledger: Ledger, *, now: datetime | None = None,
             once_per_day: bool = False, embed: Embed | None = None) -> ScanReport:
    """One scan with what ``config`` configures (``embed``: another embedding function)."""
    caches: list[EmbeddingCache] = []

    def tools() -> ScanTools:
        nonlocal embed
        if embed is None:
            embed, cache = build_embed(config)
            caches.append(cache)
        return ScanTools(embed, build_judge(config, ledger))

    try:
        return scan(ledger=ledger, paths=config.paths, settings=config.auto_improve,
                    sources=config.instances["sources"], tools=tools, forge=config.forge,
                    notify=notifier_for(config, ledger), now=now or utcnow(),
                    unbuilt=config.unbuilt, once_per_day=once_per_day)
    finally:
        for cache in caches:
            cache.close()
