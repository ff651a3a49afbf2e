"""complete_for_role: routing, the budget check, ledger costing and the fallback chain, with
the `litellm` target calling a scripted OpenAI-compatible server over real HTTP."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oxi_core.config import OxiConfig, load_config
from oxi_core.inference.calls import complete_for_role, complete_for_role_sync
from oxi_core.inference.errors import FailureKind, InferenceError
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.testing.model_server import ErrorReply, Reply, Text, Usage
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.repos import exec_agent_toml

MESSAGES = [{"role": "user", "content": "summarise the day"}]
USAGE = Usage(input_tokens=1000, output_tokens=200)  # claude-haiku-4-5: $0.002 by the card


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def configure(tmp_path: Path, server: OpenAIServer, *, engine: dict[str, object] | None = None,
              routing: str | None = None) -> tuple[OxiConfig, Ledger]:
    (tmp_path / "roadmap.md").write_text("# roadmap\n")
    gateway = (f'\n[inference.gateway]\ntype = "litellm"\n'
               f'kwargs = {{ base_url = "{server.api_base_url}", api_key = "sk-x" }}\n')
    (tmp_path / "oxi.toml").write_text(
        exec_agent_toml([sys.executable, "-c", "pass"], engine=engine or {}) + gateway)
    if routing is not None:
        (tmp_path / "routing.yaml").write_text(routing)
    config = load_config(tmp_path / "oxi.toml")
    return config, config.ledger


def test_a_call_is_costed_in_the_ledger_under_its_role_with_its_provenance(
    tmp_path: Path, server: OpenAIServer,
) -> None:
    server.load_script([Reply(Text("quiet day"), usage=USAGE)])
    config, ledger = configure(tmp_path, server)
    result = complete_for_role_sync(config, ledger, "summary", MESSAGES, max_tokens=100)
    assert result.text == "quiet day"
    [event] = ledger.events(types=[ev.INFERENCE_CALL])
    assert event.cost_usd == pytest.approx(0.002) == result.cost_usd
    assert event.payload["role"] == "summary"
    assert event.payload["target"] == "gateway"
    assert event.payload["model"] == "claude-haiku-4-5"
    assert event.payload["cost_source"] == "rate_card"
    assert "did not price" in event.payload["cost_note"]
    # It counts toward the daily cap.
    assert ledger.spend_since("1970-01-01T00:00:00+00:00") == pytest.approx(0.002)
    assert server.turns[0].body["model"] == "claude-haiku-4-5"


def test_no_call_is_made_once_the_daily_budget_is_spent(
    tmp_path: Path, server: OpenAIServer,
) -> None:
    config, ledger = configure(tmp_path, server, engine={"budget_per_day_usd": 1.0})
    ledger.append(ev.DISPATCH_RESULT, cost_usd=1.0)
    with pytest.raises(InferenceError) as caught:
        complete_for_role_sync(config, ledger, "summary", MESSAGES)
    assert caught.value.kind is FailureKind.BUDGET
    assert server.turns == ()
    [refused] = ledger.events(types=[ev.INFERENCE_REFUSED])
    assert refused.payload["role"] == "summary"
    assert "daily budget of $1.00 is spent" in refused.payload["reason"]


def test_a_role_cap_stops_that_role_only(tmp_path: Path, server: OpenAIServer) -> None:
    server.load_script([Reply(Text("a"), usage=USAGE), Reply(Text("b"), usage=USAGE)])
    config, ledger = configure(tmp_path, server,
                               engine={"role_caps_usd": {"heartbeat-triage": 0.001}})
    complete_for_role_sync(config, ledger, "heartbeat-triage", MESSAGES)  # $0.002 > the cap
    with pytest.raises(InferenceError, match=r"role heartbeat-triage.s daily cap of \$0.00"):
        complete_for_role_sync(config, ledger, "heartbeat-triage", MESSAGES)
    assert complete_for_role_sync(config, ledger, "summary", MESSAGES).text == "b"
    assert len(server.turns) == 2


def test_a_provider_failure_falls_back_along_the_chain_and_says_so(
    tmp_path: Path, server: OpenAIServer,
) -> None:
    server.load_script([ErrorReply.server_error(), Reply(Text("from the fallback"), usage=USAGE)])
    config, ledger = configure(tmp_path, server)
    result = complete_for_role_sync(config, ledger, "critic", MESSAGES)  # haiku, then gpt-5-mini
    assert result.text == "from the fallback"
    assert [t.body["model"] for t in server.turns] == ["claude-haiku-4-5", "gpt-5-mini"]
    [fallback] = ledger.events(types=[ev.ROUTE_FALLBACK])
    assert fallback.payload == {"role": "critic", "from": "gateway:claude-haiku-4-5",
                                "to": "gateway:gpt-5-mini", "reason": "server_error",
                                "error": fallback.payload["error"]}
    [failed] = ledger.events(types=[ev.INFERENCE_FAILED])
    assert failed.payload["status"] == 500
    [call] = ledger.events(types=[ev.INFERENCE_CALL])
    assert call.payload["fallback_from"] == ["gateway:claude-haiku-4-5"]
    assert call.payload["model"] == "gpt-5-mini"


def test_a_bad_request_is_not_a_provider_failure_and_does_not_fall_back(
    tmp_path: Path, server: OpenAIServer,
) -> None:
    server.load_script([ErrorReply(400, "max_tokens too large")])
    config, ledger = configure(tmp_path, server)
    with pytest.raises(InferenceError) as caught:
        complete_for_role_sync(config, ledger, "critic", MESSAGES)
    assert caught.value.kind is FailureKind.BAD_REQUEST
    assert len(server.turns) == 1 and not ledger.events(types=[ev.ROUTE_FALLBACK])


def test_a_role_routed_to_a_target_oxi_toml_lacks_says_what_to_configure(
    tmp_path: Path, server: OpenAIServer,
) -> None:
    routing = "roles:\n  summary:\n    - name: grok\n      adapter: grok\n      model: g\n"
    config, ledger = configure(tmp_path, server, routing=routing)
    with pytest.raises(InferenceError, match=r"names grok:g, and oxi\.toml configures no such"):
        complete_for_role_sync(config, ledger, "summary", MESSAGES)
    assert ledger.events(types=[ev.INFERENCE_FAILED])[0].payload["kind"] == "not_configured"


def test_the_sync_call_works_inside_a_running_event_loop(
    tmp_path: Path, server: OpenAIServer,
) -> None:
    server.load_script([Reply(Text("from a thread"), usage=USAGE)])
    config, ledger = configure(tmp_path, server)

    async def engine_code() -> str:
        return complete_for_role_sync(config, ledger, "summary", MESSAGES).text

    assert asyncio.run(engine_code()) == "from a thread"


def test_the_async_call_reuses_its_connection(tmp_path: Path, server: OpenAIServer) -> None:
    server.load_script([Reply(Text("1"), usage=USAGE), Reply(Text("2"), usage=USAGE)])
    config, ledger = configure(tmp_path, server)

    async def two() -> list[str]:
        texts = [(await complete_for_role(config, ledger, "summary", MESSAGES)).text
                 for _ in range(2)]
        await config.instance("inference", "gateway").aclose()
        return texts

    assert asyncio.run(two()) == ["1", "2"]
