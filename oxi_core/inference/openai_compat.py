"""An inference target speaking OpenAI's Chat Completions (``POST {base_url}/chat/completions``).

The LiteLLM gateway, xAI and OpenRouter all speak it; they differ in where the cost of a call is
written, which each subclass says in ``price``. Requests are never streamed: a streamed answer
carries no cost header, and a stream cut midway reaches the client looking complete
(reference/agent-cli-protocols.md), so ``stream`` is forced to false on every request.

httpx is imported when the first call is made, never at import time.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from oxi_core.agentic.types import Usage
from oxi_core.inference.errors import (
    FailureKind,
    InferenceError,
    kind_for_status,
    retry_after_seconds,
)
from oxi_core.models import InferenceResult

# Keys a caller's **kwargs may not set: oxi decides them.
RESERVED_BODY_KEYS = frozenset({"model", "messages", "max_tokens", "stream", "stream_options"})


@attrs.frozen
class Price:
    cost_usd: float
    source: str
    note: str = ""


@attrs.frozen
class ChatUsage:
    """Chat Completions usage: completion tokens include the reasoning tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def for_rate_card(self) -> Usage:
        reasoning = min(self.reasoning_tokens, self.completion_tokens)
        return Usage(input_tokens=self.prompt_tokens,
                     output_tokens=self.completion_tokens - reasoning,
                     cached_tokens=self.cached_tokens, reasoning_tokens=reasoning)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def price_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and number >= 0 else None  # NaN is not a price


def chat_usage(data: Mapping[str, Any]) -> ChatUsage:
    usage = data.get("usage")
    if not isinstance(usage, Mapping):
        return ChatUsage()
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return ChatUsage(
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        cached_tokens=_count(prompt_details.get("cached_tokens"))
        if isinstance(prompt_details, Mapping) else 0,
        reasoning_tokens=_count(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, Mapping) else 0,
    )


def answer_text(data: Mapping[str, Any]) -> str | None:
    """The first choice's message text; None when the body has no choice at all."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return None
    message = choices[0].get("message")
    if not isinstance(message, Mapping):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(part.get("text", "")) for part in content
                       if isinstance(part, Mapping))
    return ""


def rate_card_price(model: str, usage: ChatUsage, why: str) -> Price:
    """The rate card's figure for ``usage`` of ``model``, flagged with ``why`` it was needed."""
    from oxi_core.agentic.rates import cost_usd

    cost = cost_usd(model, usage.for_rate_card())
    if cost is None:
        return Price(0.0, "unknown", f"{why}; the rate card has no price for {model!r}: "
                                     "cost unknown, recorded as 0")
    return Price(cost, "rate_card", f"{why}; priced from the rate card")


@attrs.define
class OpenAICompatibleTarget:
    """Base class: ``base_url`` ends where ``/chat/completions`` is appended (".../v1").

    ``api_key`` is sent as a Bearer token; ``role_keys`` gives a role its own key (a gateway's
    virtual key per role) and falls back to ``api_key``. Both are secrets: configure them as
    ``{ env = "NAME" }``.
    """

    # The endpoint's root, e.g. http://127.0.0.1:4000/v1.
    base_url: str
    # The key (write { env = "NAME" }).
    api_key: str | None = attrs.field(default=None, repr=False)
    # A key per role (critic, heartbeat-triage, ...) when the gateway tracks spend by key.
    role_keys: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    # Seconds a call may take.
    timeout_s: float = 60.0
    # Seconds to connect.
    connect_timeout_s: float = 5.0
    # Loop -> client: one connection pool per event loop (a client cannot outlive its loop).
    _clients: weakref.WeakKeyDictionary[Any, Any] = attrs.field(
        init=False, factory=weakref.WeakKeyDictionary, repr=False)

    target_name: ClassVar[str] = "openai"

    # -- what subclasses say ----------------------------------------------------------------

    def extra_body(self, model: str) -> dict[str, Any]:
        """Provider-specific request fields."""
        return {}

    def price(self, headers: Mapping[str, str], data: Mapping[str, Any], model: str,
              usage: ChatUsage) -> Price:
        """Where this endpoint writes a call's cost: the body's ``usage.cost`` when present,
        else the rate card."""
        reported = price_number((data.get("usage") or {}).get("cost")) if isinstance(
            data.get("usage"), Mapping) else None
        if reported:
            return Price(reported, "provider")
        return rate_card_price(model, usage, f"{self.target_name} did not price {model!r}")

    def failure_kind(self, status: int, body_text: str) -> FailureKind:
        """What an HTTP error status from this endpoint means."""
        return kind_for_status(status, body_text)

    # -- the call ---------------------------------------------------------------------------

    def key_for(self, role: str | None) -> str | None:
        return self.role_keys.get(role, self.api_key) if role else self.api_key

    def request_body(self, messages: Sequence[Mapping[str, Any]], model: str, max_tokens: int,
                     options: Mapping[str, Any]) -> dict[str, Any]:
        extra = {k: v for k, v in options.items() if k not in RESERVED_BODY_KEYS}
        return {**self.extra_body(model), **extra, "model": model,
                "messages": [dict(m) for m in messages], "max_tokens": max_tokens,
                "stream": False}

    async def complete(
        self, messages: Sequence[Mapping[str, Any]], model: str, max_tokens: int, **kwargs: Any
    ) -> InferenceResult:
        """One non-streamed chat completion. ``role=`` picks the key; other keyword arguments
        go into the request body (``temperature``, ``response_format``, ...)."""
        import httpx

        role = kwargs.pop("role", None)
        body = self.request_body(messages, model, max_tokens, kwargs)
        headers = {"content-type": "application/json"}
        key = self.key_for(role)
        if key:
            headers["authorization"] = f"Bearer {key}"
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        started = time.perf_counter()
        fail = self._failure(model)
        try:
            response = await self._client().post(url, content=json.dumps(body), headers=headers)
        except httpx.TimeoutException as error:
            raise fail(f"no answer within {self.timeout_s:g} s ({type(error).__name__})",
                       FailureKind.TIMEOUT) from error
        except httpx.HTTPError as error:
            raise fail(f"cannot reach {self.base_url}: {type(error).__name__}: {error}",
                       FailureKind.CONNECTION) from error
        latency_ms = (time.perf_counter() - started) * 1000
        lowered = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code >= 400:
            text = response.text
            raise fail(f"HTTP {response.status_code}: {_error_message(text)}",
                       self.failure_kind(response.status_code, text),
                       status=response.status_code, retry_after_s=retry_after_seconds(lowered))
        try:
            data = response.json()
        except ValueError as error:
            raise fail(f"HTTP {response.status_code} with a body that is not JSON: "
                       f"{response.text[:200]!r}", FailureKind.MALFORMED,
                       status=response.status_code) from error
        text_out = answer_text(data) if isinstance(data, Mapping) else None
        if text_out is None:
            raise fail(f"HTTP {response.status_code} with no choices[0].message: "
                       f"{response.text[:200]!r}", FailureKind.MALFORMED,
                       status=response.status_code)
        usage = chat_usage(data)
        price = self.price(lowered, data, model, usage)
        return InferenceResult(
            text=text_out, model=str(data.get("model") or model), cost_usd=price.cost_usd,
            cost_source=price.source, tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens, latency_ms=round(latency_ms, 3),
            cost_note=price.note,
        )

    def _failure(self, model: str) -> Any:
        def make(message: str, kind: FailureKind, *, status: int | None = None,
                 retry_after_s: float | None = None) -> InferenceError:
            return InferenceError(f"{self.target_name} {model}: {message}", kind=kind,
                                  status=status, retry_after_s=retry_after_s,
                                  target=self.target_name, model=model)

        return make

    def _client(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
                trust_env=False,  # never route calls through a proxy the environment names
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close this event loop's connection pool (a new call opens another)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


def _error_message(text: str) -> str:
    """The message of an OpenAI-style ``{"error": {"message": ...}}`` body, else its start."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty body)"
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    return text.strip()[:300]
