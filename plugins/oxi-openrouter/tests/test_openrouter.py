"""oxi-openrouter: cost from the response's usage.cost (recorded bodies, the scripted server,
the real LiteLLM gateway passing it through); the rate card within 5% of OpenRouter's figure."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from oxi_openrouter.target import OPENROUTER_API, OpenRouterTarget, openrouter_cost
from oxi_openrouter.testing import OpenRouterServer, openrouter_usage_cost

from oxi_core.agentic.rates import cost_usd
from oxi_core.config import load_config
from oxi_core.inference.calls import complete_for_role_sync
from oxi_core.inference.openai_compat import chat_usage
from oxi_core.ledger import events as ev
from oxi_core.testing.litellm_proxy import LiteLLMProxy, proxy_model
from oxi_core.testing.model_server import Reply, Text, Usage
from oxi_core.testing.replay_server import ReplayServer
from oxi_core.testing.repos import exec_agent_toml

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = sorted(FIXTURES.glob("openrouter_*.json"))
MESSAGES = [{"role": "user", "content": "summarise"}]
USAGE = Usage(input_tokens=2000, output_tokens=150)


def call(target: OpenRouterTarget, model: str) -> Any:
    async def run() -> Any:
        try:
            return await target.complete(MESSAGES, model, 200)
        finally:
            await target.aclose()

    return asyncio.run(run())


def replayed(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\ncontent-type: application/json\n\n" + body


def test_the_default_endpoint_is_openrouters_api() -> None:
    assert OpenRouterTarget().base_url == OPENROUTER_API
    assert OpenRouterTarget().health() is None  # only a gateway in front has a health route


@pytest.mark.parametrize("fixture", RECORDED, ids=lambda p: p.stem)
def test_the_ledger_figure_is_openrouters_own_for_every_recorded_response(
    fixture: Path,
) -> None:
    body = json.loads(fixture.read_text())
    with ReplayServer([replayed(fixture.read_bytes())]) as server:
        result = call(OpenRouterTarget(base_url=server.base_url, api_key="k"), body["model"])
    assert result.cost_source == "provider"
    assert result.cost_usd == pytest.approx(body["usage"]["cost"], rel=0.05)
    assert result.tokens_in == body["usage"]["prompt_tokens"]


@pytest.mark.parametrize("fixture", [p for p in RECORDED if "docs_example" not in p.name],
                         ids=lambda p: p.stem)
def test_the_rate_card_fallback_is_within_5_percent_of_openrouters_figure(
    fixture: Path,
) -> None:
    body = json.loads(fixture.read_text())
    estimate = cost_usd(body["model"], chat_usage(body).for_rate_card())
    assert estimate is not None, f"the rate card has no entry for {body['model']}"
    assert estimate == pytest.approx(body["usage"]["cost"], rel=0.05, abs=1e-9)


def test_bring_your_own_key_adds_the_upstream_charge_to_the_fee() -> None:
    usage = {"cost": 0.001, "is_byok": True, "cost_details": {"upstream_inference_cost": 0.02}}
    assert openrouter_cost({"usage": usage}) == pytest.approx(0.021)
    # Without is_byok the upstream figure is informational (OpenRouter's docs example).
    assert openrouter_cost({"usage": {**usage, "is_byok": False}}) == 0.001


def test_a_free_model_costs_zero_by_openrouters_account_not_an_unknown() -> None:
    with OpenRouterServer([Reply(Text("free"), usage=USAGE)]) as server:
        result = call(OpenRouterTarget(base_url=server.api_base_url), "qwen/qwen3.6-plus:free")
    assert (result.cost_usd, result.cost_source, result.cost_note) == (0.0, "provider", "")


@pytest.mark.slow
def test_through_the_real_litellm_gateway_usage_cost_is_passed_through() -> None:
    model = "meta-llama/llama-3.3-70b-instruct"
    with OpenRouterServer([Reply(Text("ok"), usage=USAGE)]) as server:
        with LiteLLMProxy([proxy_model("llama", server, provider="openrouter",
                                       upstream_model=model)]) as proxy:
            result = call(OpenRouterTarget(base_url=proxy.base_url, api_key=proxy.master_key),
                          "llama")
        [turn] = server.turns
    assert turn.body["model"] == model
    assert result.cost_source == "provider"
    assert result.cost_usd == pytest.approx(openrouter_usage_cost(
        model, {"prompt_tokens": 2000, "completion_tokens": 150}))


def test_heartbeat_triage_routed_to_openrouter_is_costed_in_the_ledger(tmp_path: Path) -> None:
    model = "deepseek/deepseek-chat-v3-0324"
    (tmp_path / "routing.yaml").write_text(
        f"roles:\n  heartbeat-triage:\n    - {{adapter: openrouter, model: {model}}}\n")
    (tmp_path / "roadmap.md").write_text("# roadmap\n")
    with OpenRouterServer([Reply(Text("a stuck hook"), usage=USAGE)]) as server:
        (tmp_path / "oxi.toml").write_text(
            exec_agent_toml([sys.executable, "-c", "pass"])
            + f'\n[inference.openrouter]\ntype = "openrouter"\n'
              f'kwargs = {{ base_url = "{server.api_base_url}", api_key = "or-k" }}\n')
        config = load_config(tmp_path / "oxi.toml")
        complete_for_role_sync(config, config.ledger, "heartbeat-triage", MESSAGES)
    [event] = config.ledger.events(types=[ev.INFERENCE_CALL])
    assert (event.payload["target"], event.payload["cost_source"]) == ("openrouter", "provider")
    assert event.cost_usd == pytest.approx((2000 * 0.28 + 150 * 0.88) / 1e6)
