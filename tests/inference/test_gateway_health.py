"""The gateway health check `oxi doctor` runs: up, down, and skipped offline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from oxi_core.config import load_config
from oxi_core.inference.health import gateway_health
from oxi_core.inference.litellm import LiteLLMTarget
from oxi_core.testing.model_server import Text
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.replay_server import ReplayServer
from oxi_core.testing.repos import exec_agent_toml

ALIVE = b'HTTP/1.1 200 OK\ncontent-type: application/json\n\n"I\'m alive!"'


def config_with(tmp_path: Path, url: str) -> object:
    (tmp_path / "roadmap.md").write_text("# roadmap\n")
    (tmp_path / "oxi.toml").write_text(
        exec_agent_toml([sys.executable, "-c", "pass"])
        + f'\n[inference.gateway]\ntype = "litellm"\nkwargs = {{ base_url = "{url}" }}\n')
    return load_config(tmp_path / "oxi.toml")


def test_an_answering_gateway_is_up(tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OXI_INFERENCE_OFFLINE", raising=False)
    with ReplayServer([ALIVE]) as server:
        [health] = gateway_health(config_with(tmp_path, f"{server.base_url}/v1"))
        assert server.requests[0].path == "/health/liveliness"
    assert (health.target, health.ok, health.detail) == ("gateway", True, '"I\'m alive!"')


def test_a_gateway_that_is_down_is_reported_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OXI_INFERENCE_OFFLINE", raising=False)
    with OpenAIServer([Text("x")]) as server:
        url = server.base_url
    [health] = gateway_health(config_with(tmp_path, url))
    assert not health.ok and health.detail.startswith("unreachable: ConnectError")


def test_a_gateway_answering_an_error_is_down() -> None:
    capture = b"HTTP/1.1 503 Service Unavailable\n\nno upstream"
    with ReplayServer([capture]) as server:
        health = LiteLLMTarget(base_url=server.base_url).health("gw")
    assert health is not None and not health.ok and health.detail == "HTTP 503: no upstream"


def test_offline_skips_every_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OXI_INFERENCE_OFFLINE", "1")
    with OpenAIServer() as server:
        assert gateway_health(config_with(tmp_path, server.base_url)) == []
        assert server.requests == ()
