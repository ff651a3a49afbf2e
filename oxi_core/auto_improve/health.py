"""Is auto-improve worth the operator's attention? Acceptance ratio (accepted / emitted) per
7-day window over the last 14 days: below the threshold in both windows pauses the loop
(AUTO_IMPROVE_NOISE_ALERT, AUTO_IMPROVE_PAUSED, a notification) until ``oxi auto-improve
unpause``. Separate from the engine's killswitch: neither stops the other. And the watchdog:
no proposal emitted for ``watchdog_hours`` -> auto_improve_watchdog_stalled, once per stall."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from oxi_core.auto_improve.settings import AutoImproveSettings
from oxi_core.auto_improve.store import PAUSED_KEY, ProposalStatus, is_paused, last_event
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import isoformat, parse_ts

# Proposals emitted before the last unpause do not count again (they paused the loop once).
HEALTH_SINCE_KEY = "auto_improve_health_since"

Notify = Callable[[str], None]


@attrs.frozen
class Window:
    start: str
    end: str
    emitted: int
    accepted: int

    @property
    def ratio(self) -> float | None:
        return self.accepted / self.emitted if self.emitted else None

    def as_json(self) -> dict[str, object]:
        return {**attrs.asdict(self), "ratio": self.ratio}


def windows(ledger: Ledger, now: datetime, settings: AutoImproveSettings
            ) -> tuple[Window, Window]:
    """(the last window, the one before it), each ``health_window_days`` long."""
    floor = ledger.state_get(HEALTH_SINCE_KEY) or ""
    span = timedelta(days=settings.health_window_days)
    found = []
    for end in (now, now - span):
        start = end - span
        low = max(isoformat(start), floor)
        row = ledger.query(
            "SELECT count(*), coalesce(sum(status = ?), 0) FROM auto_improve_proposals "
            "WHERE emitted_at >= ? AND emitted_at < ?",
            (ProposalStatus.ACCEPTED, low, isoformat(end)))[0]
        found.append(Window(isoformat(start), isoformat(end), int(row[0]), int(row[1])))
    return found[0], found[1]


def noisy(window: Window, settings: AutoImproveSettings) -> bool:
    return (window.emitted >= settings.health_min_emitted and window.ratio is not None
            and window.ratio < settings.acceptance_threshold)


def check_health(ledger: Ledger, settings: AutoImproveSettings, now: datetime,
                 notify: Notify) -> bool:
    """Pause the loop when both windows are noisy. True when it paused it now."""
    if is_paused(ledger):
        return False
    recent, previous = windows(ledger, now, settings)
    if not (noisy(recent, settings) and noisy(previous, settings)):
        return False
    details = {"threshold": settings.acceptance_threshold,
               "windows": [recent.as_json(), previous.as_json()]}
    ledger.append(ev.AUTO_IMPROVE_NOISE_ALERT, payload=details)
    notify(ev.AUTO_IMPROVE_NOISE_ALERT)
    reason = (f"acceptance ratio below {settings.acceptance_threshold:g} for two consecutive "
              f"{settings.health_window_days:g}-day windows")
    ledger.state_set(PAUSED_KEY, json.dumps({"at": isoformat(now), "reason": reason}),
                     event_type=ev.AUTO_IMPROVE_PAUSED, payload={"reason": reason, **details})
    notify(ev.AUTO_IMPROVE_PAUSED)
    return True


def paused_reason(ledger: Ledger) -> str | None:
    value = ledger.state_get(PAUSED_KEY)
    return None if value is None else str(json.loads(value).get("reason", "paused"))


def unpause(ledger: Ledger, now: datetime) -> bool:
    """Resume the loop; False when it was not paused. Only proposals emitted from now on count
    towards the next health check."""
    if not is_paused(ledger):
        return False
    with ledger.transaction():
        ledger.state_set(HEALTH_SINCE_KEY, isoformat(now))
        ledger.state_set(PAUSED_KEY, None, event_type=ev.AUTO_IMPROVE_UNPAUSED, payload={})
    return True


def watchdog(ledger: Ledger, settings: AutoImproveSettings, now: datetime,
             notify: Notify) -> bool:
    """Record (once per stall) that nothing was emitted for ``watchdog_hours``, counting from
    the last proposal, else from the loop's first scan. True when it recorded one now."""
    emitted = last_event(ledger, ev.EXTERNAL_PROPOSAL_EMITTED)
    if emitted is not None:
        since = emitted[0]
    else:
        first = ledger.events(types=[ev.AUTO_IMPROVE_SCAN_STARTED], limit=1)
        if not first:
            return False
        since = first[0].ts
    stalled = last_event(ledger, ev.AUTO_IMPROVE_WATCHDOG_STALLED)
    if stalled is not None and stalled[0] >= since:
        return False  # this stall was reported already
    hours = (now - parse_ts(since)).total_seconds() / 3600
    if hours < settings.watchdog_hours:
        return False
    ledger.append(ev.AUTO_IMPROVE_WATCHDOG_STALLED, payload={
        "last_emitted_at": emitted[0] if emitted else None, "hours": round(hours, 1),
        "threshold_hours": settings.watchdog_hours})
    notify(ev.AUTO_IMPROVE_WATCHDOG_STALLED)
    return True
