"""oxi-grok: xAI's Chat Completions directly and through the real LiteLLM gateway, costed from
xAI's usage.cost_in_usd_ticks; heartbeat triage routed to Grok lands its cost in the ledger."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from oxi_grok.target import XAI_API, GrokTarget, ticks_to_usd
from oxi_grok.testing import XAIServer

from oxi_core.config import load_config
from oxi_core.inference.calls import complete_for_role_sync
from oxi_core.inference.routing import load_routing, route_for
from oxi_core.ledger import events as ev
from oxi_core.testing.litellm_proxy import LiteLLMProxy, proxy_model
from oxi_core.testing.model_server import ErrorReply, Reply, Text, Usage
from oxi_core.testing.repos import exec_agent_toml

MESSAGES = [{"role": "user", "content": "why is T1-5 stuck?"}]
USAGE = Usage(input_tokens=1200, output_tokens=80, cached_tokens=200, reasoning_tokens=10)
# grok-4-fast: 1000 fresh x $0.20 + 200 cached x $0.05 + 90 output x $0.50, per 1M tokens.
GROK_4_FAST_COST = (1000 * 0.20 + 200 * 0.05 + 90 * 0.50) / 1e6


def call(target: GrokTarget, model: str) -> Any:
    async def run() -> Any:
        try:
            return await target.complete(MESSAGES, model, 100)
        finally:
            await target.aclose()

    return asyncio.run(run())


def test_the_default_endpoint_is_xais_api() -> None:
    assert GrokTarget().base_url == XAI_API == "https://api.x.ai/v1"
    assert ticks_to_usd(2_550_000) == 0.000255 and ticks_to_usd(0) is None


def test_direct_calls_are_costed_from_xais_ticks_and_never_streamed() -> None:
    with XAIServer([Reply(Text("a hook hung"), usage=USAGE)]) as server:
        result = call(GrokTarget(base_url=server.api_base_url, api_key="xai-test"),
                      "grok-4-fast-non-reasoning")
        [turn] = server.turns
    assert turn.body["stream"] is False
    assert turn.header("authorization") == "Bearer xai-test"
    assert (result.cost_source, result.cost_note) == ("provider", "")
    assert result.cost_usd == pytest.approx(GROK_4_FAST_COST)
    assert (result.tokens_in, result.tokens_out) == (1200, 90)


def test_without_ticks_the_rate_card_prices_it_and_says_so() -> None:
    class NoTicks(XAIServer):
        def chat_completion(self, reply: Any, model: str, body: dict[str, Any]) -> Any:
            completion = super().chat_completion(reply, model, body)
            del completion["usage"]["cost_in_usd_ticks"]
            return completion

    with NoTicks([Reply(Text("ok"), usage=USAGE)]) as server:
        result = call(GrokTarget(base_url=server.api_base_url), "grok-4-fast-non-reasoning")
    assert result.cost_source == "rate_card"
    assert result.cost_usd == pytest.approx(GROK_4_FAST_COST)
    assert "priced from the rate card" in result.cost_note


def test_an_xai_rate_limit_is_classified() -> None:
    from oxi_core.inference.errors import FailureKind, InferenceError

    with XAIServer([ErrorReply.rate_limited(retry_after=4)]) as server, pytest.raises(
        InferenceError
    ) as caught:
        call(GrokTarget(base_url=server.api_base_url), "grok-code-fast-1")
    assert caught.value.kind is FailureKind.RATE_LIMITED and caught.value.retry_after_s == 4


@pytest.mark.slow
def test_through_the_real_litellm_gateway_xais_figure_still_decides() -> None:
    with XAIServer([Reply(Text("a"), usage=USAGE), Reply(Text("b"), usage=USAGE)]) as server:
        models = [proxy_model("grok-code-fast-1", server, provider="xai",
                              upstream_model="grok-code-fast-1"),
                  proxy_model("grok-4-fast", server, provider="xai",
                              upstream_model="grok-4-fast-non-reasoning")]
        with LiteLLMProxy(models) as proxy:
            target = GrokTarget(base_url=proxy.base_url, api_key=proxy.master_key)
            code = call(target, "grok-code-fast-1")
            fast = call(target, "grok-4-fast")
        assert [t.body["model"] for t in server.turns] == ["grok-code-fast-1",
                                                           "grok-4-fast-non-reasoning"]
    # The gateway passes xAI's usage through: ticks, not its own price list.
    assert (fast.cost_source, fast.cost_usd) == ("provider", pytest.approx(GROK_4_FAST_COST))
    assert code.cost_source == "provider"
    assert code.cost_usd == pytest.approx((1000 * 0.20 + 200 * 0.02 + 90 * 1.50) / 1e6)


def test_heartbeat_triage_routed_to_grok_costs_the_ledger_from_xais_figure(
    tmp_path: Path,
) -> None:
    (tmp_path / "routing.yaml").write_text(
        "version: 1\nroles:\n  heartbeat-triage:\n"
        "    - {name: grok, adapter: grok, model: grok-4-fast-non-reasoning}\n")
    assert route_for("heartbeat-triage", routing=load_routing(tmp_path)).adapter_name == "grok"
    with XAIServer([Reply(Text("its worker lost the network"), usage=USAGE)]) as server:
        (tmp_path / "roadmap.md").write_text("# roadmap\n")
        (tmp_path / "oxi.toml").write_text(
            exec_agent_toml([sys.executable, "-c", "pass"])
            + f'\n[inference.grok]\ntype = "grok"\n'
              f'kwargs = {{ base_url = "{server.api_base_url}", api_key = "xai-k" }}\n')
        config = load_config(tmp_path / "oxi.toml")
        result = complete_for_role_sync(config, config.ledger, "heartbeat-triage", MESSAGES)
    assert result.text == "its worker lost the network"
    [event] = config.ledger.events(types=[ev.INFERENCE_CALL])
    assert event.payload["target"] == "grok" and event.payload["cost_source"] == "provider"
    assert event.cost_usd == pytest.approx(GROK_4_FAST_COST)


def test_xais_api_has_no_health_route_but_a_gateway_in_front_does() -> None:
    assert GrokTarget().health() is None
    health = GrokTarget(base_url="http://127.0.0.1:9/v1").health()
    assert health is not None and health.url == "http://127.0.0.1:9/health/liveliness"
