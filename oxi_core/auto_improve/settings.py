"""The ``[auto_improve]`` table of oxi.toml: which sources a scan reads, thresholds, caps and
the curated account lists. Every key has a default; docs/auto-improve.md describes them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs


def _at_least(minimum: float) -> Any:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        if value < minimum:
            raise ValueError(f"{attribute.name} must be at least {minimum:g}, got {value:g}",
                             attribute)

    return check


def _fraction(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value:g}", attribute)


def _score(_instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 1 <= value <= 5:
        raise ValueError(f"{attribute.name} must be a rubric score from 1 to 5, got {value}",
                         attribute)


@attrs.frozen
class AutoImproveSettings:
    # [sources.*] instances a scan reads, in order; None: every configured source.
    sources: tuple[str, ...] | None = None
    # Curated account lists by name (e.g. x = ["karpathy", ...], github_orgs = [...]): sources
    # read them through their bind(context) as context.auto_improve.accounts[NAME].
    accounts: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    # A source's first scan reads this far back; later scans read since its last good fetch.
    lookback_days: float = attrs.field(default=7.0, validator=_at_least(0.0))
    # Caps: candidates kept per source and scan (newest first), ranked candidates judged,
    # proposals emitted per scan, and dollars the judge and screen may spend per UTC day.
    max_candidates_per_source: int = attrs.field(default=200, validator=_at_least(1))
    # Candidates judged per scan, best ranked first.
    top_k: int = attrs.field(default=15, validator=_at_least(1))
    # Proposals a scan may stage.
    max_proposals_per_scan: int = attrs.field(default=5, validator=_at_least(1))
    # Dollars a day auto-improve may spend on judging.
    daily_cap_usd: float = attrs.field(default=5.0, validator=_at_least(0.0))
    # A judged candidate becomes a proposal at these rubric scores (1-5) or better.
    min_relevance: int = attrs.field(default=3, validator=_score)
    # The lowest concreteness score (1-5) a proposal may have.
    min_concreteness: int = attrs.field(default=3, validator=_score)
    # Dedup: cosine similarity against open roadmap items and recently updated tasks, and the
    # window in which the same signal kind and target is one signal.
    semantic_threshold: float = attrs.field(default=0.85, validator=_fraction)
    # How far back a near-duplicate (by embedding) is looked for.
    semantic_window_days: float = attrs.field(default=30.0, validator=_at_least(0.0))
    # How long the same signal kind and target count as one signal.
    temporal_window_days: float = attrs.field(default=14.0, validator=_at_least(0.0))
    # Ranking reads the merged pull requests of this many days (from the forge).
    history_days: float = attrs.field(default=90.0, validator=_at_least(0.0))
    # Health: accepted / emitted per window; below the threshold in two consecutive windows
    # (each with at least health_min_emitted proposals) pauses the loop.
    acceptance_threshold: float = attrs.field(default=0.15, validator=_fraction)
    # The window the acceptance ratio is measured over.
    health_window_days: float = attrs.field(default=7.0, validator=_at_least(1.0))
    # Proposals the window needs before its ratio can pause the loop.
    health_min_emitted: int = attrs.field(default=3, validator=_at_least(1))
    # Watchdog: no proposal emitted for this long -> auto_improve_watchdog_stalled.
    watchdog_hours: float = attrs.field(default=36.0, validator=_at_least(1.0))
    # A folder holding model.onnx, tokenizer.json and tokenizer_config.json, instead of the
    # packages oxi-engine[auto-improve] installs.
    model_dir: Path | None = None
