"""`oxi doctor` checks the gateway's health (skipped with OXI_INFERENCE_OFFLINE=1), and
`oxi config check` that every model-backed role in use reaches a configured target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.replay_server import ReplayServer
from tests.inference.support import git_folder, oxi

ALIVE = b'HTTP/1.1 200 OK\ncontent-type: application/json\n\n"I\'m alive!"'
BASE = """[adapter]
class = "oxi_adapter_self.SelfAdapter"
kwargs = { repo_root = "." }
[agents.worker]
type = "exec"
kwargs = { argv = ["true"] }
"""


def findings(folder: Path, command: list[str], **env: str) -> list[dict[str, Any]]:
    report = json.loads(oxi(folder, *command, "--json", **env).stdout)
    found: list[dict[str, Any]] = report.get("findings", report.get("result", {}).get(
        "findings", []))
    return found


def setup(folder: Path, extra: str) -> Path:
    return git_folder(folder, BASE + extra)


def gateway(url: str) -> str:
    return f'[inference.gateway]\ntype = "litellm"\nkwargs = {{ base_url = "{url}" }}\n'


def by_check(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [f for f in items if f["check"] == name]


def test_doctor_reports_a_gateway_that_does_not_answer(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        url = server.base_url
    folder = setup(tmp_path, gateway(url))
    [finding] = by_check(findings(folder, ["doctor"]), "inference_gateways")
    assert finding["severity"] == "error"
    assert finding["where"] == "[inference.gateway] kwargs.base_url"
    assert f"does not answer {url}/health/liveliness: unreachable" in finding["problem"]
    assert "OXI_INFERENCE_OFFLINE=1 skips this check" in finding["fix"]
    # Offline, and in the fast `config check`, nobody calls it.
    assert by_check(findings(folder, ["doctor"], OXI_INFERENCE_OFFLINE="1"),
                    "inference_gateways") == []
    assert by_check(findings(folder, ["config", "check"]), "inference_gateways") == []


def test_doctor_is_quiet_about_a_gateway_that_answers(tmp_path: Path) -> None:
    with ReplayServer([ALIVE]) as server:
        folder = setup(tmp_path, gateway(f"{server.base_url}/v1"))
        assert by_check(findings(folder, ["doctor"]), "inference_gateways") == []
        assert [r.path for r in server.requests] == ["/health/liveliness"]


def test_an_llm_critic_without_a_gateway_is_an_error_before_the_first_tick(
    tmp_path: Path,
) -> None:
    folder = setup(tmp_path, '[judges.review]\ntype = "llm"\n[engine]\ntriage = true\n')
    found = by_check(findings(folder, ["config", "check"]), "routing")
    assert [f["where"] for f in found] == ["routing.yaml roles.critic",
                                           "routing.yaml roles.heartbeat-triage"]
    assert "an `llm` judge is configured, but the role routes to gateway:claude-haiku-4-5" in (
        found[0]["problem"])


def test_a_broken_routing_file_is_a_finding_naming_its_line(tmp_path: Path) -> None:
    folder = setup(tmp_path, "")
    (folder / "routing.yaml").write_text("roles:\n  worker:\n    - adapter: x\n      bad: 1\n")
    [finding] = by_check(findings(folder, ["config", "check"]), "routing")
    assert finding["where"] == "routing.yaml"
    assert finding["problem"].startswith(f"{folder / 'routing.yaml'}:4: [roles.worker[0]]: "
                                         "key 'bad': unknown key")
