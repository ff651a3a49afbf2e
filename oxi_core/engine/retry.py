"""Backoff for transient failures: min(base · 2^(attempt−1), max), never sooner than retry-after."""

from __future__ import annotations

from datetime import datetime, timedelta

from oxi_core.policy import Policy


def backoff_delay_s(attempt: int, policy: Policy, retry_after_s: float | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    exponential: float = min(policy.retry_base_s * 2.0 ** max(0, attempt - 1),
                             policy.retry_max_s)
    return max(exponential, retry_after_s or 0.0)


def retry_due(now: datetime, attempt: int, policy: Policy,
              retry_after_s: float | None = None) -> datetime:
    return now + timedelta(seconds=backoff_delay_s(attempt, policy, retry_after_s))
