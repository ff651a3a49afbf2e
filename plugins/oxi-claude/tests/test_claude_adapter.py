"""ClaudeCodeAdapter: its argv, its environment, its oxi.toml, and the real binary's version."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from oxi_claude.adapter import ClaudeCodeAdapter

from oxi_core.agentic.types import CanonicalEvent, DispatchRequest
from oxi_core.config import load_config
from oxi_core.errors import ConfigError
from oxi_core.models import Classification
from oxi_core.protocols import AgenticAdapter
from oxi_core.testing.agent_clis import CLAUDE_CODE_VERSION, claude_binary

OXI = Path(sys.executable).with_name("oxi")


def request(tmp_path: Path, **kw: Any) -> DispatchRequest:
    return DispatchRequest(task_id="T1-1", prompt="-do the thing", worktree=tmp_path, **kw)


def test_adapter_implements_the_agentic_protocol() -> None:
    adapter = ClaudeCodeAdapter()
    assert isinstance(adapter, AgenticAdapter)
    assert adapter.model_id() == "claude-default"
    assert ClaudeCodeAdapter(model="claude-sonnet-4-5").model_id() == "claude-sonnet-4-5"
    assert adapter.tool_translator("Bash") == "shell"
    assert adapter.usage_normalizer({"input_tokens": 3, "output_tokens": 4}).total == 7


def test_argv_carries_the_defaults_and_ends_with_the_prompt_after_a_separator(
    tmp_path: Path,
) -> None:
    adapter = ClaudeCodeAdapter(
        binary="/opt/claude",
        model="claude-sonnet-4-5",
        max_turns=40,
        allowed_tools=("Bash(git *)", "Edit"),
        disallowed_tools=("WebFetch",),
        append_system_prompt="be brief",
    )
    argv = adapter.argv(request(tmp_path))
    assert argv[:6] == [
        "/opt/claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]
    assert argv[argv.index("--model") + 1] == "claude-sonnet-4-5"
    assert argv[argv.index("--max-turns") + 1] == "40"
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    at = argv.index("--allowedTools")
    assert argv[at + 1 : at + 3] == ["Bash(git *)", "Edit"]
    assert argv[argv.index("--disallowedTools") + 1] == "WebFetch"
    assert argv[argv.index("--append-system-prompt") + 1] == "be brief"
    assert argv[-2:] == ["--", "-do the thing"]
    assert "--max-budget-usd" not in argv
    assert "--resume" not in argv


def test_request_limits_override_the_kwargs_and_the_cost_cap_goes_to_the_cli(
    tmp_path: Path,
) -> None:
    adapter = ClaudeCodeAdapter(model="claude-sonnet-4-5", max_turns=40, max_cost_usd=5.0)
    argv = adapter.argv(
        request(
            tmp_path,
            model="claude-haiku-4-5",
            max_turns=3,
            max_cost_usd=0.5,
            resume_session_id="abc-123",
        )
    )
    assert argv[argv.index("--model") + 1] == "claude-haiku-4-5"
    assert argv[argv.index("--max-turns") + 1] == "3"
    assert argv[argv.index("--max-budget-usd") + 1] == "0.5"
    assert argv[argv.index("--resume") + 1] == "abc-123"
    capped = ClaudeCodeAdapter(max_cost_usd=2.0).argv(request(tmp_path))
    assert capped[capped.index("--max-budget-usd") + 1] == "2"


def test_environment_is_the_allow_list_plus_what_claude_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXI_TEST_SECRET", "do-not-leak")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "the-operators-own-key")
    adapter = ClaudeCodeAdapter(
        base_url="http://127.0.0.1:9",
        api_key="configured-key",
        home=tmp_path / "home",
        extra_env={"FOO": "bar"},
    )
    env = adapter.env()
    assert "OXI_TEST_SECRET" not in env
    assert env["ANTHROPIC_API_KEY"] == "configured-key"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["HOME"] == str(tmp_path / "home")
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["DISABLE_TELEMETRY"] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert env["FOO"] == "bar"
    assert "IS_SANDBOX" not in env
    assert ClaudeCodeAdapter(max_retries=2).env()["CLAUDE_CODE_MAX_RETRIES"] == "2"
    assert "ANTHROPIC_API_KEY" not in ClaudeCodeAdapter().env()
    assert ClaudeCodeAdapter(pass_env=("ANTHROPIC_API_KEY",)).env()["ANTHROPIC_API_KEY"] == (
        "the-operators-own-key"
    )


def test_skipping_permissions_is_a_declared_bypass_and_sets_is_sandbox_only_as_root() -> None:
    skipping = ClaudeCodeAdapter(dangerously_skip_permissions=True)
    assert skipping.permission_bypass() is not None
    assert "--dangerously-skip-permissions" in skipping.argv(
        DispatchRequest(task_id="T", prompt="p", worktree=Path())
    )
    assert ("IS_SANDBOX" in skipping.env()) is (os.geteuid() == 0)
    assert ClaudeCodeAdapter(permission_mode="bypassPermissions").permission_bypass()
    assert ClaudeCodeAdapter().permission_bypass() is None
    with pytest.raises(ValueError):
        ClaudeCodeAdapter(permission_mode="yolo")


def oxi_toml(folder: Path, agents: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    path = folder / "oxi.toml"
    path.write_text(
        '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n\n'
        + agents
    )
    return path


def test_oxi_toml_builds_a_claude_agent_and_refuses_a_bypass_without_high_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXI_TEST_CLAUDE_KEY", "sk-test-not-a-real-key")
    toml = oxi_toml(
        tmp_path / "ok",
        (
            '[agents.claude]\ntype = "claude"\nkwargs = { model = "claude-sonnet-4-5", '
            'max_turns = 40, max_cost_usd = 0.5, allowed_tools = ["Bash"], home = "claude-home", '
            'api_key = { env = "OXI_TEST_CLAUDE_KEY" } }\n'
        ),
    )
    agent = load_config(toml).instance("agents", "claude")
    assert isinstance(agent, ClaudeCodeAdapter)
    assert (agent.model, agent.max_turns, agent.max_cost_usd) == ("claude-sonnet-4-5", 40, 0.5)
    assert agent.home == (tmp_path / "ok" / "claude-home").resolve()
    assert agent.api_key == "sk-test-not-a-real-key"

    bypass = oxi_toml(
        tmp_path / "bypass",
        ('[agents.claude]\ntype = "claude"\nkwargs = { dangerously_skip_permissions = true }\n'),
    )
    with pytest.raises(ConfigError, match='trust = "high"'):
        load_config(bypass)
    trusted = oxi_toml(
        tmp_path / "trusted",
        (
            '[agents.claude]\ntype = "claude"\ntrust = "high"\n'
            "kwargs = { dangerously_skip_permissions = true }\n"
        ),
    )
    assert load_config(trusted).instance("agents", "claude").dangerously_skip_permissions

    wrong = oxi_toml(
        tmp_path / "wrong", '[agents.claude]\ntype = "claude"\nkwargs = { max_turns = "many" }\n'
    )
    with pytest.raises(ConfigError, match="max_turns"):
        load_config(wrong)


def test_oxi_config_check_lists_the_claude_agent_and_says_a_missing_binary_is_not_found(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    oxi_toml(repo, '[agents.claude]\ntype = "claude"\n'
             'kwargs = { model = "claude-sonnet-4-5", binary = "/nonexistent/claude" }\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OXI_", "PYTEST_"))}
    done = subprocess.run(
        [str(OXI), "config", "check"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "agents.claude: claude (oxi-claude)" in done.stdout
    assert ("error: [agents.claude] kwargs.binary: /nonexistent/claude not found; fix: install "
            "it, or set kwargs.binary to its path") in done.stdout
    assert "unknown" not in done.stdout  # "not found", never "version unknown"


@pytest.mark.real_cli
@pytest.mark.skipif(
    claude_binary() is None,
    reason="claude not installed: run scripts/install-agent-clis (or set OXI_CLAUDE_BIN)",
)
def test_version_asks_the_binary_once(tmp_path: Path) -> None:
    adapter = ClaudeCodeAdapter(binary=str(claude_binary()), home=tmp_path)
    assert adapter.version() == CLAUDE_CODE_VERSION
    adapter.binary = "/nonexistent/claude"  # cached: not asked again
    assert adapter.version() == CLAUDE_CODE_VERSION
    assert ClaudeCodeAdapter(binary="/nonexistent/claude").version() == "unknown"


def test_a_missing_binary_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    events: list[CanonicalEvent] = []
    result = asyncio.run(
        ClaudeCodeAdapter(binary=str(tmp_path / "no-claude")).invoke(
            request(tmp_path, on_event=events.append)
        )
    )
    assert result.classification is Classification.FAILED
    assert result.reason.startswith("cannot start claude: FileNotFoundError")
    assert events == []


def recorded_claude(tmp_path: Path) -> Path:
    """A stand-in binary that prints a recorded successful run (for what needs no model)."""
    fixtures = Path(__file__).parent / "fixtures"
    lines = [
        line
        for name in ("system_init", "assistant_text", "result_success")
        for line in (fixtures / f"claude_{name}.jsonl").read_text().splitlines()
    ]
    script = tmp_path / "claude"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdout.write({chr(10).join(lines)!r} + '\\n')\n"
    )
    script.chmod(0o755)
    return script


def test_engine_callbacks_that_raise_neither_stop_nor_strand_the_agent(tmp_path: Path) -> None:
    spawned: list[int] = []

    def on_spawn(pid: int, pgid: int) -> None:
        spawned.append(pgid)
        raise RuntimeError("ledger is locked")

    def on_event(event: CanonicalEvent) -> None:
        raise RuntimeError("ledger is locked")

    adapter = ClaudeCodeAdapter(binary=str(recorded_claude(tmp_path)))
    result = asyncio.run(adapter.invoke(request(tmp_path, on_spawn=on_spawn, on_event=on_event)))
    assert result.classification is Classification.SUCCESS
    assert result.final_text == "hi from fake server"
    [pgid] = spawned
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
