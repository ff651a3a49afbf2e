"""``FakeInferenceGateway``: an inference target answering from a table, for unit tests.

Answers are keyed by (model, prompt hash); a call nobody scripted fails loudly with the hash it
looked for, so a test shows what it forgot. It records every call. For tests that need the
HTTP protocol, use :class:`~oxi_core.testing.openai_server.OpenAIServer` (and the real LiteLLM
proxy, :mod:`oxi_core.testing.litellm_proxy`) instead.

    fake = FakeInferenceGateway()
    fake.answer("claude-haiku-4-5", messages, "the worker lost its network", cost_usd=0.0004)
    result = await fake.complete(messages, "claude-haiku-4-5", 200)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from oxi_core.inference.errors import InferenceError
from oxi_core.models import InferenceResult

Messages = Sequence[Mapping[str, Any]]


def prompt_hash(messages: Messages) -> str:
    """A stable hash of a conversation: its messages as canonical JSON."""
    text = json.dumps([dict(m) for m in messages], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class FakeCall:
    model: str
    messages: tuple[Mapping[str, Any], ...]
    max_tokens: int
    kwargs: Mapping[str, Any]
    key: tuple[str, str]


@attrs.define
class FakeInferenceGateway:
    """Canned answers (an InferenceResult or an InferenceError to raise) by (model, hash)."""

    answers: dict[tuple[str, str], InferenceResult | InferenceError] = attrs.field(factory=dict)
    calls: list[FakeCall] = attrs.field(factory=list)
    # Answer any prompt to a model with this, when set (after the exact table).
    by_model: dict[str, InferenceResult | InferenceError] = attrs.field(factory=dict)

    def answer(self, model: str, messages: Messages, text: str, *, cost_usd: float = 0.0,
               cost_source: str = "gateway", tokens_in: int = 0, tokens_out: int = 0) -> None:
        self.answers[(model, prompt_hash(messages))] = InferenceResult(
            text=text, model=model, cost_usd=cost_usd, cost_source=cost_source,
            tokens_in=tokens_in, tokens_out=tokens_out)

    def fail(self, model: str, messages: Messages, error: InferenceError) -> None:
        self.answers[(model, prompt_hash(messages))] = error

    async def complete(self, messages: Messages, model: str, max_tokens: int,
                       **kwargs: Any) -> InferenceResult:
        key = (model, prompt_hash(messages))
        self.calls.append(FakeCall(model, tuple(dict(m) for m in messages), max_tokens,
                                   dict(kwargs), key))
        found = self.answers.get(key) or self.by_model.get(model)
        if found is None:
            known = ", ".join(f"({m}, {h[:12]})" for m, h in self.answers) or "none"
            raise LookupError(f"FakeInferenceGateway: no answer for model {model!r} and prompt "
                              f"hash {key[1][:12]}; scripted: {known}")
        if isinstance(found, InferenceError):
            raise found
        return found
