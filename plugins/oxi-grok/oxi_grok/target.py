"""xAI Grok over Chat Completions: directly (``base_url`` defaults to xAI's API) or through a
LiteLLM gateway (``base_url`` = the gateway, ``model`` = its model name).

Cost, in order: xAI's own figure, ``usage.cost_in_usd_ticks`` (10^10 ticks to the dollar,
on every xAI response); a gateway's ``x-litellm-response-cost`` header (LiteLLM prices
``xai/grok-code-fast-1`` but not ``grok-4-fast``); the rate card, flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from oxi_core.inference.health import Health
from oxi_core.inference.litellm import LiteLLMTarget
from oxi_core.inference.openai_compat import ChatUsage, Price

XAI_API = "https://api.x.ai/v1"
TICKS_PER_USD = 10_000_000_000


def ticks_to_usd(ticks: Any) -> float | None:
    if isinstance(ticks, bool) or not isinstance(ticks, int | float) or ticks <= 0:
        return None
    return round(ticks / TICKS_PER_USD, 10)


@attrs.define
class GrokTarget(LiteLLMTarget):
    """kwargs: ``api_key`` (an xAI key, or a gateway key), ``base_url``, ``role_keys``."""

    # xAI's API root (or a gateway's).
    base_url: str = XAI_API

    target_name: ClassVar[str] = "grok"

    def price(self, headers: Mapping[str, str], data: Mapping[str, Any], model: str,
              usage: ChatUsage) -> Price:
        block = data.get("usage")
        own = ticks_to_usd(block.get("cost_in_usd_ticks")) if isinstance(block, Mapping) else None
        if own is not None:
            return Price(own, "provider")
        return super().price(headers, data, model, usage)

    def health(self, name: str = "grok") -> Health | None:
        """A gateway in front has a liveness route; the provider's own API has none."""
        return None if self.base_url.rstrip("/") == XAI_API else super().health(name)
