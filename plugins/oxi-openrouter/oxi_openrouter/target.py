"""OpenRouter over Chat Completions: directly (``base_url`` defaults to OpenRouter's API) or
through a LiteLLM gateway (which asks OpenRouter for its usage and passes ``usage.cost``
through in the body).

Cost comes from the response's ``usage.cost`` (credits, one to the dollar), never a header;
with bring-your-own-key the provider's own charge, ``usage.cost_details
.upstream_inference_cost``, is added to OpenRouter's fee. Without either, the rate card,
flagged. Model names are OpenRouter's ("qwen/qwen3.6-plus:free", "meta-llama/llama-3.3-70b
-instruct"); the rate card matches them without their vendor prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from oxi_core.inference.health import Health
from oxi_core.inference.litellm import LiteLLMTarget
from oxi_core.inference.openai_compat import ChatUsage, Price, price_number

OPENROUTER_API = "https://openrouter.ai/api/v1"


def openrouter_cost(data: Mapping[str, Any]) -> float | None:
    """What the call cost by OpenRouter's own figures, or None when the body has none."""
    usage = data.get("usage")
    if not isinstance(usage, Mapping):
        return None
    fee = price_number(usage.get("cost"))
    details = usage.get("cost_details")
    upstream = price_number(details.get("upstream_inference_cost")) if isinstance(
        details, Mapping) and usage.get("is_byok") else None
    if fee is None and upstream is None:
        return None
    return round((fee or 0.0) + (upstream or 0.0), 10)


@attrs.define
class OpenRouterTarget(LiteLLMTarget):
    """kwargs: ``api_key`` (an OpenRouter key, or a gateway key), ``base_url``,
    ``role_keys``."""

    # OpenRouter's API root (or a gateway's).
    base_url: str = OPENROUTER_API

    target_name: ClassVar[str] = "openrouter"

    def price(self, headers: Mapping[str, str], data: Mapping[str, Any], model: str,
              usage: ChatUsage) -> Price:
        own = openrouter_cost(data)
        if own is not None:
            # A free model costs 0 by OpenRouter's own account: that is a price, not a gap.
            return Price(own, "provider")
        return super().price(headers, data, model, usage)

    def health(self, name: str = "openrouter") -> Health | None:
        """A gateway in front has a liveness route; the provider's own API has none."""
        return None if self.base_url.rstrip("/") == OPENROUTER_API else super().health(name)
