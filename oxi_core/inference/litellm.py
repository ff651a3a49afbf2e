"""The built-in ``litellm`` inference target: a LiteLLM gateway (proxy) oxi calls over HTTP.

Cost, in order: the gateway's ``x-litellm-response-cost`` header; the provider's figure the
gateway passed through in the body (OpenRouter's ``usage.cost``); the rate card, flagged. The
header is absent (or 0) for a model the gateway cannot price (reference/agent-cli-protocols.md,
fixtures/agent-cli/litellm_nonstream_no_pricing.txt).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from oxi_core.inference.errors import FailureKind
from oxi_core.inference.health import Health
from oxi_core.inference.openai_compat import (
    ChatUsage,
    OpenAICompatibleTarget,
    Price,
    price_number,
)

COST_HEADER = "x-litellm-response-cost"
LIVENESS_PATH = "/health/liveliness"


@attrs.define
class LiteLLMTarget(OpenAICompatibleTarget):
    """``base_url``: the gateway's root or its ``/v1`` (both answer ``/chat/completions``).
    ``api_key``: the key sent by default; ``role_keys``: a virtual key per role."""

    target_name: ClassVar[str] = "litellm"

    def price(self, headers: Mapping[str, str], data: Mapping[str, Any], model: str,
              usage: ChatUsage) -> Price:
        header = price_number(headers.get(COST_HEADER))
        if header:
            return Price(header, "gateway")
        # Else what the provider reported through it (OpenRouter's usage.cost), else the card.
        return super().price(headers, data, model, usage)

    def failure_kind(self, status: int, body_text: str) -> FailureKind:
        # A gateway without a database has no virtual keys: it answers any key but its master
        # key with 400 `no_db_connection` (reference/agent-cli-protocols.md).
        if status == 400 and ("no_db_connection" in body_text or "No connected db" in body_text):
            return FailureKind.CREDENTIALS
        return super().failure_kind(status, body_text)

    def health_url(self) -> str:
        """Where ``oxi doctor`` checks the gateway: its liveness route. (``/health`` itself
        sends a request to every configured model: money and minutes on a real gateway.)"""
        root = self.base_url.rstrip("/")
        root = root.removesuffix("/v1")
        return f"{root}{LIVENESS_PATH}"

    def health(self, name: str = "gateway") -> Health | None:
        from oxi_core.inference.health import check_health

        return check_health(name, self.health_url())
