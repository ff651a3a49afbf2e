"""A scripted xAI server for tests: OpenAI-compatible Chat Completions whose usage carries
``cost_in_usd_ticks`` as xAI's does, priced from a table of list prices per 1M tokens."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from oxi_core.testing.model_server import Reply, Script, StepLike
from oxi_core.testing.openai_server import OpenAIServer
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


class XAIServer(OpenAIServer):
    def __init__(self, script: Script | Iterable[StepLike] = (), **kwargs: Any) -> None:
        kwargs.setdefault("models", tuple(XAI_PRICES))
        super().__init__(script, **kwargs)

    def chat_completion(self, reply: Reply, model: str, body: dict[str, Any]) -> dict[str, Any]:
        completion = super().chat_completion(reply, model, body)
        usage = completion["usage"]
        # xAI counts reasoning tokens inside completion tokens, like OpenAI.
        usage["completion_tokens"] += reply.usage.reasoning_tokens
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["cost_in_usd_ticks"] = xai_ticks(model, usage)
        return completion
