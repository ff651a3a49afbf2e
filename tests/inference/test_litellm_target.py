"""The `litellm` inference target over HTTP: request shape, cost provenance, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from oxi_core.inference.errors import FailureKind, InferenceError
from oxi_core.inference.litellm import LiteLLMTarget
from oxi_core.models import Classification
from oxi_core.testing.fake_inference import FakeInferenceGateway, prompt_hash
from oxi_core.testing.model_server import ErrorReply, Reply, Stall, Text
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.replay_server import ReplayServer

FIXTURES = Path(__file__).parent / "fixtures"
MESSAGES = [{"role": "user", "content": "why is T1-3 stuck?"}]


def complete(target: LiteLLMTarget, model: str = "claude-haiku-4-5", **kwargs: Any) -> Any:
    async def call() -> Any:
        try:
            return await target.complete(MESSAGES, model, 64, **kwargs)
        finally:
            await target.aclose()

    return asyncio.run(call())


def failure(target: LiteLLMTarget, **kwargs: Any) -> InferenceError:
    with pytest.raises(InferenceError) as caught:
        complete(target, **kwargs)
    return caught.value


def test_every_outbound_body_says_stream_false_whatever_the_caller_asks() -> None:
    replies = [Reply(Text(f"answer {n}")) for n in range(3)]
    with OpenAIServer(replies) as server:
        target = LiteLLMTarget(base_url=server.api_base_url, api_key="sk-test")
        complete(target)
        complete(target, stream=True, stream_options={"include_usage": True})
        complete(target, temperature=0.0, stream="yes")
        bodies = [r.body for r in server.turns]
    assert len(bodies) == 3
    assert all(body["stream"] is False for body in bodies)
    assert all("stream_options" not in body for body in bodies)
    assert bodies[2]["temperature"] == 0.0
    assert bodies[0]["messages"] == MESSAGES and bodies[0]["max_tokens"] == 64


def test_a_role_sends_its_own_virtual_key_and_others_the_default_key() -> None:
    with OpenAIServer([Text("a"), Text("b"), Text("c")]) as server:
        target = LiteLLMTarget(base_url=server.api_base_url, api_key="sk-default",
                               role_keys={"heartbeat-triage": "sk-oxi-heartbeat"})
        complete(target, role="heartbeat-triage")
        complete(target, role="summary")
        complete(target)
        keys = [r.header("authorization") for r in server.turns]
        bodies = [r.body for r in server.turns]
    assert keys == ["Bearer sk-oxi-heartbeat", "Bearer sk-default", "Bearer sk-default"]
    assert all("role" not in body for body in bodies)  # the role chooses a key, never a field


def test_cost_comes_from_the_gateway_header_of_a_recorded_litellm_response() -> None:
    capture = (FIXTURES / "litellm_nonstream_headers_and_body.txt").read_bytes()
    with ReplayServer([capture]) as server:
        result = complete(LiteLLMTarget(base_url=server.base_url, api_key="k"), model="fake-gpt")
        assert server.requests[0].path == "/chat/completions"
    assert result.text == "hi from fake server"
    assert result.cost_usd == pytest.approx(0.00048)
    assert result.cost_source == "gateway"
    assert result.cost_note == ""
    assert (result.tokens_in, result.tokens_out) == (120, 30)


def test_an_unpriced_model_is_costed_from_the_rate_card_and_flagged() -> None:
    # The capture has no x-litellm-response-cost: LiteLLM could not price the model.
    capture = (FIXTURES / "litellm_nonstream_no_pricing.txt").read_bytes()
    with ReplayServer([capture]) as server:
        result = complete(LiteLLMTarget(base_url=server.base_url), model="claude-haiku-4-5")
    # 100 fresh + 20 cached prompt tokens, 23 output + 7 reasoning (haiku-4: $1 / $0.10 / $5).
    expected = (100 * 1.0 + 20 * 0.10 + 23 * 5.0 + 7 * 5.0) / 1_000_000
    assert result.cost_usd == pytest.approx(expected)
    assert result.cost_source == "rate_card"
    assert "did not price 'claude-haiku-4-5'" in result.cost_note


def test_a_model_neither_gateway_nor_rate_card_can_price_is_unknown_and_says_so() -> None:
    capture = (FIXTURES / "litellm_nonstream_no_pricing.txt").read_bytes()
    with ReplayServer([capture]) as server:
        result = complete(LiteLLMTarget(base_url=server.base_url), model="fake-gpt-nocost")
    assert (result.cost_usd, result.cost_source) == (0.0, "unknown")
    assert "no price for 'fake-gpt-nocost'" in result.cost_note


def test_a_provider_cost_passed_through_in_the_body_is_used() -> None:
    # LiteLLM passes OpenRouter's usage.cost through in the body, with no header.
    body = (b'{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],'
            b'"usage":{"prompt_tokens":10,"completion_tokens":2,"cost":0.000123}}')
    capture = b"HTTP/1.1 200 OK\ncontent-type: application/json\n\n" + body
    with ReplayServer([capture]) as server:
        result = complete(LiteLLMTarget(base_url=server.base_url), model="openrouter/qwen")
    assert (result.cost_usd, result.cost_source) == (0.000123, "provider")


@pytest.mark.parametrize(("step", "kind", "classification", "retry_after"), [
    (ErrorReply.server_error(), FailureKind.SERVER_ERROR, Classification.RETRYABLE_TRANSIENT,
     None),
    (ErrorReply(503), FailureKind.SERVER_ERROR, Classification.RETRYABLE_TRANSIENT, None),
    (ErrorReply.overloaded(), FailureKind.OVERLOADED, Classification.RETRYABLE_TRANSIENT, None),
    (ErrorReply.rate_limited(retry_after=7), FailureKind.RATE_LIMITED,
     Classification.RETRYABLE_TRANSIENT, 7.0),
    (ErrorReply.unauthorized(), FailureKind.CREDENTIALS, Classification.FAILED, None),
    (ErrorReply(400, "bad model"), FailureKind.BAD_REQUEST, Classification.FAILED, None),
])
def test_http_failures_are_classified_like_agent_runs(
    step: ErrorReply, kind: FailureKind, classification: Classification,
    retry_after: float | None,
) -> None:
    with OpenAIServer([step]) as server:
        error = failure(LiteLLMTarget(base_url=server.api_base_url))
    assert error.kind is kind
    assert error.classification is classification
    assert error.retry_after_s == retry_after
    assert error.status == step.status
    assert error.message.startswith("litellm claude-haiku-4-5: HTTP")


def test_a_silent_server_is_a_timeout() -> None:
    with OpenAIServer([Stall()]) as server:
        error = failure(LiteLLMTarget(base_url=server.api_base_url, timeout_s=0.5))
    assert error.kind is FailureKind.TIMEOUT
    assert error.classification is Classification.RETRYABLE_TRANSIENT
    assert error.provider_failure


def test_a_gateway_that_is_down_is_a_connection_failure() -> None:
    with OpenAIServer() as server:
        url = server.api_base_url
    error = failure(LiteLLMTarget(base_url=url))
    assert error.kind is FailureKind.CONNECTION and error.provider_failure


@pytest.mark.parametrize("body", [b"<html>bad gateway page</html>", b'"just a string"',
                                  b'{"choices": []}', b'{"id": "x", "choices": [{"x": 1}]}'])
def test_a_2xx_body_that_is_not_a_chat_completion_is_malformed(body: bytes) -> None:
    capture = b"HTTP/1.1 200 OK\ncontent-type: application/json\n\n" + body
    with ReplayServer([capture]) as server:
        error = failure(LiteLLMTarget(base_url=server.base_url))
    assert error.kind is FailureKind.MALFORMED
    assert error.classification is Classification.RETRYABLE_TRANSIENT
    assert not error.provider_failure


def test_the_fake_gateway_answers_by_model_and_prompt_hash_and_records_calls() -> None:
    fake = FakeInferenceGateway()
    fake.answer("claude-haiku-4-5", MESSAGES, "its worker died", cost_usd=0.0002)
    result = asyncio.run(fake.complete(MESSAGES, "claude-haiku-4-5", 10, role="x"))
    assert (result.text, result.cost_usd) == ("its worker died", 0.0002)
    assert fake.calls[0].key == ("claude-haiku-4-5", prompt_hash(MESSAGES))
    with pytest.raises(LookupError, match="no answer for model 'other'"):
        asyncio.run(fake.complete(MESSAGES, "other", 10))
    other = [{"role": "user", "content": "something else"}]
    with pytest.raises(LookupError):
        asyncio.run(fake.complete(other, "claude-haiku-4-5", 10))
