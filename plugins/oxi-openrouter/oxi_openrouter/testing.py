"""A scripted OpenRouter server for tests: Chat Completions whose usage carries ``cost`` (and
``cost_details``) as OpenRouter's documentation shows, priced from a table of list prices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oxi_core.testing.openai_server import PricedChatServer

# USD per 1M tokens (input, output), as OpenRouter lists them for these models.
OPENROUTER_PRICES: Mapping[str, tuple[float, float]] = {
    "qwen/qwen3.6-plus:free": (0.0, 0.0),
    "meta-llama/llama-3.3-70b-instruct": (0.13, 0.40),
    "deepseek/deepseek-chat-v3-0324": (0.28, 0.88),
    "mistralai/mistral-large-2411": (2.00, 6.00),
}


def openrouter_usage_cost(model: str, usage: Mapping[str, Any]) -> float:
    price_in, price_out = OPENROUTER_PRICES[model.removeprefix("openrouter/")]
    dollars = (float(usage["prompt_tokens"]) * price_in
               + float(usage["completion_tokens"]) * price_out) / 1_000_000
    return round(dollars, 10)


class OpenRouterServer(PricedChatServer):
    prices = OPENROUTER_PRICES

    def cost_fields(self, model: str, usage: Mapping[str, Any]) -> dict[str, Any]:
        return {"cost": openrouter_usage_cost(model, usage), "is_byok": False,
                "cost_details": {"upstream_inference_cost": None}}
