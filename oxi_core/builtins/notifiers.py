"""Built-in notifiers: the log (always on) and a webhook that POSTs each event as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core.event import Event
from oxi_core.ledger import events as ev
from oxi_core.log import get_logger, redact

if TYPE_CHECKING:
    from oxi_core.ledger import Ledger

# What reaches notifiers: what needs a person (a task parked or refused, a merge that will
# not happen by itself, a setup error) or stopped or slowed the engine (paused, the day's
# budget spent, a phase failing, a crash cleaned up). Routine progress (claims, results, PRs,
# merges) stays in the ledger: `oxi status`, `oxi task show` and `oxi ledger tail` read it.
# hookspecs.md lists the same set (a test keeps the two in step).
NOTIFY_EVENT_TYPES = frozenset(
    {
        # the engine stopped, or cannot go on as configured
        "engine_paused",
        "engine_resumed",
        "daily_budget_reached",
        "phase_failed",
        "config_reload_failed",
        # a task needs a person
        "task_failed",
        "task_held",
        "task_skipped",
        "task_cancelled",
        "task_cap_exceeded",
        "auto_merge_not_armed",
        "auto_merge_refused",
        "pr_head_moved",
        "pr_checks_failed",
        "critic_unavailable",
        # a crash, cleaned up
        "zombie_reaped",
        "orphan_killed",
        # a figure that may be wrong, or a service oxi leans on that is failing
        "budget_undercount",
        "forge_rate_limited",
        "triage_disabled",
        # auto-improve
        "auto_improve_noise_alert",
        "auto_improve_paused",
        "auto_improve_watchdog_stalled",
    }
)


def deliver(notifiers: Mapping[str, Any], ledger: Ledger, event: Event) -> list[str]:
    """Hand ``event`` to every notifier; one that fails is recorded (``notify_failed``) and the
    others still run. Returns the failures, one line each."""
    failures = []
    for name, notifier in notifiers.items():
        try:
            notifier.notify(event)
        except Exception as error:  # a notifier down must not stop the engine
            message = f"{type(error).__name__}: {error}"
            failures.append(f"{name}: {message}")
            ledger.append(ev.NOTIFY_FAILED, task_id=event.task_id, payload={
                "notifier": name, "event_id": event.id, "error": message})
    return failures


def event_json(event: Event) -> dict[str, Any]:
    from oxi_core.models import converter

    body: dict[str, Any] = converter.unstructure(event)
    return dict(redact(body))


@attrs.define
class LogNotifier:
    """Writes each notified event to oxi's structured log."""

    # The log level notified events are written at.
    level: str = "warning"

    def notify(self, event: Event) -> None:
        logger = get_logger("oxi.notify")
        getattr(logger, self.level)(event.type, task_id=event.task_id, event_id=event.id,
                                    **{k: v for k, v in event.payload.items()
                                       if k not in ("task_id", "event_id")})


@attrs.define
class WebhookNotifier:
    """POSTs ``{"event": {...}}`` to ``url``; ``headers`` may carry a { env = ... } secret."""

    # Where each event is POSTed as {"event": {...}} (write { env = "NAME" } for a secret URL).
    url: str
    # Headers sent with it (values may be { env = ... }).
    headers: dict[str, str] = attrs.field(factory=dict)
    # Seconds a POST may take.
    timeout_s: float = 10.0

    def notify(self, event: Event) -> None:
        import httpx

        response = httpx.post(self.url, json={"event": event_json(event)},
                              headers=self.headers, timeout=self.timeout_s)
        response.raise_for_status()
