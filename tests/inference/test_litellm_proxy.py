"""The `litellm` target against the REAL LiteLLM proxy (1.106.2, scripts/install-litellm) on
127.0.0.1, offline, in front of oxi's scripted OpenAI-compatible server.

A missing proxy is an error here, never a skip: ./dev test and .ci/run install it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from oxi_core.inference.errors import FailureKind, InferenceError
from oxi_core.inference.litellm import LiteLLMTarget
from oxi_core.testing.litellm_proxy import LiteLLMProxy, proxy_model
from oxi_core.testing.model_server import ErrorReply, Reply, Text, Usage
from oxi_core.testing.openai_server import OpenAIServer

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "summarise"}]
# The usage of the recorded capture (fixtures/litellm_nonstream_headers_and_body.txt).
CAPTURED_USAGE = Usage(input_tokens=120, output_tokens=30, cached_tokens=20, reasoning_tokens=7)


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[OpenAIServer, LiteLLMProxy]]:
    # The entries of fixtures/agent-cli/litellm_config.yaml, plus a model LiteLLM cannot price
    # under a name oxi's rate card knows.
    with OpenAIServer(models=("fake-model",)) as upstream:
        models = [
            proxy_model("fake-gpt", upstream, input_cost_per_token=0.000002,
                        output_cost_per_token=0.000008),
            proxy_model("fake-gpt-nocost", upstream),
            proxy_model("claude-haiku-4-5", upstream),
        ]
        with LiteLLMProxy(models, master_key="sk-litellm-test") as proxy:
            yield upstream, proxy


def call(proxy: LiteLLMProxy, model: str, *, key: str | None = None, **kwargs: Any) -> Any:
    target = LiteLLMTarget(base_url=proxy.base_url, api_key=key or proxy.master_key)

    async def run() -> Any:
        try:
            return await target.complete(MESSAGES, model, 50, **kwargs)
        finally:
            await target.aclose()

    return asyncio.run(run())


def test_a_priced_model_costs_what_the_gateway_header_says(
    gateway: tuple[OpenAIServer, LiteLLMProxy],
) -> None:
    upstream, proxy = gateway
    upstream.load_script([Reply(Text("hi from fake server"), usage=CAPTURED_USAGE)])
    result = call(proxy, "fake-gpt")
    assert result.text == "hi from fake server"
    assert result.cost_source == "gateway"
    # LiteLLM's formula with the config's prices: what the captured header says.
    assert result.cost_usd == pytest.approx(0.00048)
    assert (result.tokens_in, result.tokens_out) == (120, 30)
    assert upstream.turns[-1].body["model"] == "fake-model"


def test_a_model_the_gateway_cannot_price_falls_back_to_the_rate_card(
    gateway: tuple[OpenAIServer, LiteLLMProxy],
) -> None:
    upstream, proxy = gateway
    upstream.load_script([Reply(Text("ok"), usage=CAPTURED_USAGE)])
    result = call(proxy, "claude-haiku-4-5", role="heartbeat-triage")
    assert result.cost_source == "rate_card"
    assert result.cost_usd == pytest.approx((100 * 1.0 + 20 * 0.1 + 23 * 5 + 7 * 5) / 1e6)
    assert "did not price" in result.cost_note

    upstream.load_script([Reply(Text("ok"), usage=CAPTURED_USAGE)])
    unknown = call(proxy, "fake-gpt-nocost")
    assert (unknown.cost_usd, unknown.cost_source) == (0.0, "unknown")


@pytest.mark.parametrize(("step", "kind"), [
    (ErrorReply.server_error(), FailureKind.SERVER_ERROR),
    (ErrorReply.rate_limited(retry_after=3), FailureKind.RATE_LIMITED),
])
def test_upstream_failures_reach_oxi_classified(
    gateway: tuple[OpenAIServer, LiteLLMProxy], step: ErrorReply, kind: FailureKind,
) -> None:
    upstream, proxy = gateway
    upstream.load_script([step])
    with pytest.raises(InferenceError) as caught:
        call(proxy, "fake-gpt")
    assert caught.value.kind is kind
    assert caught.value.status == step.status


def test_a_key_the_gateway_does_not_know_is_a_credentials_failure(
    gateway: tuple[OpenAIServer, LiteLLMProxy],
) -> None:
    _upstream, proxy = gateway
    # Without a database LiteLLM has no virtual keys: any key but master_key is refused.
    with pytest.raises(InferenceError) as caught:
        call(proxy, "fake-gpt", key="sk-oxi-heartbeat-unknown")
    assert caught.value.kind is FailureKind.CREDENTIALS
    assert not caught.value.classification.name.startswith("RETRY")


def test_the_gateway_health_check_sees_the_real_proxy_up(
    gateway: tuple[OpenAIServer, LiteLLMProxy],
) -> None:
    _upstream, proxy = gateway
    health = LiteLLMTarget(base_url=f"{proxy.base_url}/v1").health("gateway")
    assert health is not None and health.ok, health
    assert health.url == f"{proxy.base_url}/health/liveliness"
