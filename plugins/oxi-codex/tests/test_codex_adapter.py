"""CodexCliAdapter: argv, environment, CODEX_HOME, the version pin (T2-31), oxi.toml, and the
real pinned binary for what only it can show (resumed threads, sandbox refusals)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from oxi_codex.adapter import CodexCliAdapter, CodexFormatDriftError, self_test

from oxi_core.agentic.types import CanonicalEvent, DispatchRequest, DispatchResult, Usage
from oxi_core.config import load_config
from oxi_core.errors import ConfigError, OxiError
from oxi_core.models import Classification
from oxi_core.protocols import AgenticAdapter
from oxi_core.testing.agent_clis import CODEX_VERSION, codex_binary
from oxi_core.testing.model_server import Reply, Text, ToolCall
from oxi_core.testing.model_server import Usage as ScriptedUsage
from oxi_core.testing.openai_server import OpenAIServer

OXI = Path(sys.executable).with_name("oxi")
CODEX = codex_binary()
needs_codex = pytest.mark.skipif(
    CODEX is None,
    reason=f"codex {CODEX_VERSION} not installed: run scripts/install-agent-clis "
    "(or set OXI_CODEX_BIN)",
)


def request(worktree: Path, **kw: Any) -> DispatchRequest:
    return DispatchRequest(task_id="T2-31", prompt="-do it", worktree=worktree, **kw)


def scripted(tmp_path: Path, server: OpenAIServer, **kw: Any) -> CodexCliAdapter:
    assert CODEX is not None
    return CodexCliAdapter(
        binary=str(CODEX),
        provider="scripted",
        base_url=server.api_base_url,
        api_key="oxi-scripted-key",
        codex_home=tmp_path / "codex-home",
        home=tmp_path / "home",
        pinned_version=CODEX_VERSION,
        **kw,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def test_adapter_implements_the_agentic_protocol() -> None:
    adapter = CodexCliAdapter()
    assert isinstance(adapter, AgenticAdapter)
    assert adapter.model_id() == "gpt-5.5"
    assert adapter.tool_translator("command_execution") == "shell"
    assert adapter.tool_translator("file_change") == "edit"
    assert adapter.usage_normalizer(
        {"input_tokens": 10, "output_tokens": 5, "reasoning_output_tokens": 2}
    ) == Usage(10, 3, 0, 2)


def test_argv_for_a_new_and_a_resumed_thread(tmp_path: Path) -> None:
    adapter = CodexCliAdapter(
        binary="/opt/codex",
        provider="gw",
        base_url="http://h/v1",
        skip_git_repo_check=True,
        stream_idle_timeout_ms=120_000,
    )
    argv = adapter.argv(request(tmp_path, stall_timeout_s=60))
    assert argv == [
        "/opt/codex",
        "exec",
        "--json",
        "--sandbox",
        "workspace-write",
        "--model",
        "gpt-5.5",
        "--skip-git-repo-check",
        "-c",
        "features.shell_snapshot=false",
        "-c",
        "model_providers.gw.stream_idle_timeout_ms=60000",
        "--",
        "-do it",
    ]
    resumed = adapter.argv(request(tmp_path, model="gpt-5", resume_session_id="th-1"))
    assert resumed[resumed.index("--model") + 1] == "gpt-5"
    assert resumed[-4:] == ["resume", "th-1", "--", "-do it"]
    plain = CodexCliAdapter().argv(request(tmp_path))  # no provider: no idle timeout to set
    assert plain[plain.index("-c") + 1] == "features.shell_snapshot=false"
    assert plain.count("-c") == 1


def test_environment_is_the_allow_list_plus_codex_home_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXI_TEST_SECRET", "do-not-leak")
    monkeypatch.setenv("OPENAI_API_KEY", "the-operators-own-key")
    adapter = CodexCliAdapter(
        provider="gw",
        base_url="http://h/v1",
        api_key="k1",
        codex_home=tmp_path / "ch",
        home=tmp_path / "home",
    )
    env = adapter.env()
    assert "OXI_TEST_SECRET" not in env
    assert "OPENAI_API_KEY" not in env
    assert env["CODEX_HOME"] == str(tmp_path / "ch")
    assert env["HOME"] == str(tmp_path / "home")
    assert env["OXI_CODEX_API_KEY"] == "k1"
    assert CodexCliAdapter(api_key="k2").env()["CODEX_API_KEY"] == "k2"


def test_a_provider_gets_a_config_toml_written_into_codex_home(tmp_path: Path) -> None:
    adapter = CodexCliAdapter(
        provider="gw",
        base_url="http://127.0.0.1:4000/v1",
        codex_home=tmp_path / "ch",
        stream_idle_timeout_ms=9000,
    )
    home = adapter.prepare_home()
    text = (home / "config.toml").read_text()
    assert 'model_provider = "gw"' in text
    assert "[model_providers.gw]" in text
    assert 'base_url = "http://127.0.0.1:4000/v1"' in text
    assert 'wire_api = "responses"' in text
    assert 'env_key = "OXI_CODEX_API_KEY"' in text
    assert "request_max_retries = 0" in text
    assert "stream_idle_timeout_ms = 9000" in text
    assert adapter.sessions_path() == tmp_path / "ch" / "sessions"


def test_a_given_codex_home_without_config_and_no_provider_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no config\.toml"):
        CodexCliAdapter(codex_home=tmp_path / "empty").prepare_home()


def test_the_default_codex_home_is_per_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    one = CodexCliAdapter(provider="gw", base_url="http://a/v1").resolved_codex_home()
    two = CodexCliAdapter(provider="gw", base_url="http://b/v1").resolved_codex_home()
    assert one.parent == two.parent == tmp_path / ".oxi" / "codex-home"
    assert one != two and one.name.startswith("gw-")


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="provider needs base_url"):
        CodexCliAdapter(provider="gw")
    with pytest.raises(ValueError, match="pinned_version"):
        CodexCliAdapter(pinned_version="0.169")
    with pytest.raises(ValueError, match="provider"):
        CodexCliAdapter(provider="bad name]", base_url="http://h")
    with pytest.raises(ValueError):
        CodexCliAdapter(sandbox="none")


def test_full_access_is_a_declared_bypass() -> None:
    assert CodexCliAdapter(sandbox="danger-full-access").permission_bypass() is not None
    assert CodexCliAdapter().permission_bypass() is None


def oxi_toml(folder: Path, agents: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    path = folder / "oxi.toml"
    path.write_text(
        '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n\n'
        + agents
    )
    return path


def test_oxi_toml_builds_a_codex_agent_and_refuses_full_access_without_high_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXI_TEST_CODEX_KEY", "not-a-real-key")
    toml = oxi_toml(
        tmp_path / "ok",
        (
            '[agents.codex]\ntype = "codex"\nkwargs = { model = "gpt-5.5", pinned_version = '
            '"0.169.0", provider = "gw", base_url = "http://127.0.0.1:4000/v1", codex_home = "ch", '
            'api_key = { env = "OXI_TEST_CODEX_KEY" } }\n'
        ),
    )
    agent = load_config(toml).instance("agents", "codex")
    assert isinstance(agent, CodexCliAdapter)
    assert agent.codex_home == (tmp_path / "ok" / "ch").resolve()
    assert (agent.pinned_version, agent.api_key) == ("0.169.0", "not-a-real-key")
    assert not (tmp_path / "ok" / "ch").exists()  # building it is cheap: nothing written yet

    full = oxi_toml(
        tmp_path / "full",
        ('[agents.codex]\ntype = "codex"\nkwargs = { sandbox = "danger-full-access" }\n'),
    )
    with pytest.raises(ConfigError, match='trust = "high"'):
        load_config(full)
    bad = oxi_toml(
        tmp_path / "bad",
        ('[agents.codex]\ntype = "codex"\nkwargs = { pinned_version = "latest" }\n'),
    )
    with pytest.raises(ConfigError, match=r"\[agents\.codex\]"):
        load_config(bad)


def test_oxi_config_check_lists_the_codex_agent_and_says_a_missing_binary_is_not_found(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    oxi_toml(repo, '[agents.codex]\ntype = "codex"\n'
             'kwargs = { model = "gpt-5.5", binary = "/nonexistent/codex" }\n')
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
    assert "agents.codex: codex (oxi-codex)" in done.stdout
    assert ("error: [agents.codex] kwargs.binary: /nonexistent/codex not found; fix: install "
            "it, or set kwargs.binary to its path") in done.stdout
    assert "version unknown" not in done.stdout and "pinned" not in done.stdout


def test_the_packaged_known_good_fixture_passes_the_parser() -> None:
    assert self_test() is None


def fake_codex(tmp_path: Path, version: str) -> Path:
    script = tmp_path / "codex"
    script.write_text(f"#!{sys.executable}\nprint('codex-cli {version}')\n")
    script.chmod(0o755)
    return script


def test_a_version_other_than_the_pin_raises_drift_naming_both(tmp_path: Path) -> None:
    adapter = CodexCliAdapter(
        binary=str(fake_codex(tmp_path, "0.170.1")),
        pinned_version="0.169.0",
        codex_home=tmp_path / "ch",
        provider="gw",
        base_url="http://h/v1",
    )
    with pytest.raises(CodexFormatDriftError) as raised:
        adapter.validate()
    assert isinstance(raised.value, OxiError)
    assert "version 0.170.1" in str(raised.value) and "pinned to 0.169.0" in str(raised.value)
    with pytest.raises(CodexFormatDriftError):  # and before a run, instead of a silent misread
        asyncio.run(adapter.invoke(request(tmp_path)))


def test_no_pin_accepts_any_version(tmp_path: Path) -> None:
    adapter = CodexCliAdapter(
        binary=str(fake_codex(tmp_path, "1.2.3")),
        codex_home=tmp_path / "ch",
        provider="gw",
        base_url="http://h/v1",
        sandbox="danger-full-access",  # the stand-in has no sandbox to self-test
    )
    adapter.check()
    assert adapter.version() == "1.2.3"


@pytest.mark.real_cli
@needs_codex
def test_the_pinned_binary_passes_the_check(tmp_path: Path) -> None:
    adapter = CodexCliAdapter(
        binary=str(CODEX),
        pinned_version=CODEX_VERSION,
        provider="gw",
        base_url="http://h/v1",
        codex_home=tmp_path / "ch",
    )
    adapter.check()
    assert adapter.version() == CODEX_VERSION


def run(adapter: CodexCliAdapter, worktree: Path, **kw: Any) -> DispatchResult:
    return asyncio.run(adapter.invoke(request(worktree, timeout_s=60, stall_timeout_s=20, **kw)))


@pytest.mark.real_cli
@needs_codex
def test_a_resumed_thread_is_charged_only_for_its_own_tokens(tmp_path: Path, repo: Path) -> None:
    script = [
        Reply(Text("one"), usage=ScriptedUsage(input_tokens=100, output_tokens=20)),
        Reply(Text("two"), usage=ScriptedUsage(input_tokens=50, output_tokens=5)),
        Reply(Text("three"), usage=ScriptedUsage(input_tokens=70, output_tokens=9)),
    ]
    with OpenAIServer(script) as server:
        adapter = scripted(tmp_path, server)
        first = run(adapter, repo)
        second = run(adapter, repo, resume_session_id=first.session_id)
        # a fresh adapter (another process) learns the baseline from the session file
        third = run(scripted(tmp_path, server), repo, resume_session_id=first.session_id)
        resumed_body = server.turns[1].body
    assert [r.classification for r in (first, second, third)] == [Classification.SUCCESS] * 3
    assert first.usage == Usage(100, 20)
    assert second.usage == Usage(50, 5)
    assert third.usage == Usage(70, 9)
    assert second.session_id == third.session_id == first.session_id
    assert second.cost_usd < first.cost_usd
    assert resumed_body["input"][-1]["content"][0]["text"] == "-do it"


@pytest.mark.real_cli
@needs_codex
def test_a_run_whose_only_command_the_sandbox_refused_fails(tmp_path: Path, repo: Path) -> None:
    # Whether codex shows the refused command as an item of its JSON stream depended on timing
    # (with a shell snapshot still being taken under load it did, else only the session file
    # had it): the verdict must not. The session file's account decides when it knows more
    # (test_codex_events.py::test_refusals_only_the_session_file_shows_make_the_run_fail).
    events: list[CanonicalEvent] = []
    with OpenAIServer([ToolCall.run("echo x > /usr/oxi-refused.txt"), Text("done")]) as server:
        result = run(scripted(tmp_path, server), repo, on_event=events.append)
    assert result.classification is Classification.FAILED, result.reason
    assert "every tool call was refused by the sandbox or failed" in result.reason
    assert "echo x > /usr/oxi-refused.txt" in result.reason
    assert "Read-only file system" in result.reason
    assert not Path("/usr/oxi-refused.txt").exists()


def test_config_check_runs_the_version_pin_check(tmp_path: Path) -> None:
    """`oxi config check` fails, naming both versions, when the binary drifted from the pin."""
    from oxi_core.testing.agent_clis import codex_binary

    binary = codex_binary()
    if binary is None:
        pytest.skip("run scripts/install-agent-clis")
    (tmp_path / "oxi.toml").write_text(
        '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n'
        f'[agents.codex]\ntype = "codex"\nkwargs = {{ binary = "{binary}", '
        f'pinned_version = "0.1.0", codex_home = "{tmp_path / "ch"}", provider = "scripted", '
        'base_url = "http://127.0.0.1:9/v1", api_key = "test" }\n')
    result = subprocess.run([sys.executable, "-m", "oxi_core", "config", "check"],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "OXI_RAISE_ERRORS": "0"})
    assert result.returncode != 0, result.stdout
    assert "error: [agents.codex]: codex at" in result.stdout  # a finding of its own
    assert "0.169.0" in result.stdout and "pinned to 0.1.0" in result.stdout
