"""A scripted xAI server for tests: OpenAI-compatible Chat Completions whose usage carries
``cost_in_usd_ticks`` as xAI's does, priced from a table of list prices per 1M tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oxi_core.testing.openai_server import PricedChatServer
from oxi_grok.target import TICKS_PER_USD

# USD per 1M tokens: (input, cached input, output). Reasoning is billed as output.
XAI_PRICES: Mapping[str, tuple[float, float, float]] = {
    "grok-4-fast-non-reasoning": (0.20, 0.05, 0.50),
    "grok-4-fast-reasoning": (0.20, 0.05, 0.50),
    "grok-code-fast-1": (0.20, 0.02, 1.50),
    "grok-4-0709": (3.00, 0.75, 15.00),
}


def xai_ticks(model: str, usage: Mapping[str, Any]) -> int:
    price_in, price_cached, price_out = XAI_PRICES[model.removeprefix("xai/")]
    prompt = float(usage["prompt_tokens"])
    cached = float(usage["prompt_tokens_details"]["cached_tokens"])
    dollars = ((prompt - cached) * price_in + cached * price_cached
               + float(usage["completion_tokens"]) * price_out) / 1_000_000
    return round(dollars * TICKS_PER_USD)


class XAIServer(PricedChatServer):
    prices = XAI_PRICES

    def cost_fields(self, model: str, usage: Mapping[str, Any]) -> dict[str, Any]:
        return {"cost_in_usd_ticks": xai_ticks(model, usage)}
