"""Codex's sandbox on a host with an older system bubblewrap (issue 9.13).

Debian 12's bubblewrap 0.8 (flatpak depends on it) has no ``--argv0``. codex 0.169.0 prefers a
``bwrap`` from PATH, and without ``--argv0`` it re-executes itself as ``codex-linux-sandbox``
looked up on PATH, which exists only where codex could create its own helper links (never under
a temporary folder): the sandbox then fails (``bwrap: execvp codex-linux-sandbox: No such file
or directory``), every command is refused, and every task fails after spending money.

These tests run the real pinned codex with Debian's real bubblewrap first on PATH (unpacked by
scripts/install-bubblewrap, which ./dev test runs): without it they fail, never skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from oxi_codex.adapter import CodexCliAdapter

from oxi_core.agentic.types import DispatchRequest
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import Classification
from oxi_core.testing.agent_clis import CODEX_VERSION, codex_binary
from oxi_core.testing.model_server import Text, ToolCall
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.repos import make_repo

pytestmark = [pytest.mark.real_cli,
              pytest.mark.skipif(sys.platform != "linux", reason="bubblewrap is Linux's"),
              pytest.mark.skipif(codex_binary() is None, reason="run scripts/install-agent-clis")]

REPO_ROOT = Path(__file__).resolve().parents[3]
INSTALL = REPO_ROOT / "scripts" / "install-bubblewrap"


@pytest.fixture(scope="module")
def debian_bwrap_dir() -> Path:
    """The folder of Debian's bubblewrap 0.8 ``bwrap`` (installed if missing)."""
    done = subprocess.run([str(INSTALL)], capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"Debian's bubblewrap is needed and could not be installed "
                    f"(scripts/install-bubblewrap): {done.stderr.strip()}")
    folder = REPO_ROOT / ".tools" / "bubblewrap-debian" / "usr" / "bin"
    version = subprocess.run([str(folder / "bwrap"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    assert version.startswith("bubblewrap 0.8"), version  # the one without --argv0
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def adapter(tmp_path: Path, server: OpenAIServer, **kw: Any) -> CodexCliAdapter:
    return CodexCliAdapter(
        binary=str(codex_binary()), provider="scripted", base_url=server.api_base_url,
        api_key="oxi-scripted-key", pinned_version=CODEX_VERSION,
        # under a temporary folder, where codex creates no helper links of its own
        codex_home=tmp_path / "codex-home", home=tmp_path / "home", **kw)


def test_codex_writes_in_its_sandbox_with_debians_old_bubblewrap_first_on_path(
    tmp_path: Path, repo: Path, debian_bwrap_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{debian_bwrap_dir}{os.pathsep}{os.environ['PATH']}")
    script = [ToolCall.run("echo x > /usr/oxi-refused.txt; echo hi > made.txt"), Text("done")]
    with OpenAIServer(script) as server:
        result = asyncio.run(adapter(tmp_path, server).invoke(DispatchRequest(
            task_id="T1-1", prompt="write made.txt", worktree=repo, timeout_s=60,
            stall_timeout_s=30)))
    assert result.classification is Classification.SUCCESS, result.reason
    assert (repo / "made.txt").read_text() == "hi\n"  # the sandbox lets it write its worktree
    assert not Path("/usr/oxi-refused.txt").exists()  # and nothing else


@pytest.mark.parametrize("sandbox", ["workspace-write", "read-only"])
def test_the_sandbox_self_test_passes_for_each_sandboxed_mode_with_debians_bubblewrap(
    tmp_path: Path, debian_bwrap_dir: Path, monkeypatch: pytest.MonkeyPatch, sandbox: str
) -> None:
    monkeypatch.setenv("PATH", f"{debian_bwrap_dir}{os.pathsep}{os.environ['PATH']}")
    with OpenAIServer([Text("unused")]) as server:
        adapter(tmp_path, server, sandbox=sandbox).validate()  # raises CodexSandboxError


def without_user_namespaces(bwrap_dir: Path, argv: list[str]) -> list[str]:
    """``argv`` run where no new user namespace can be made (as on a host that forbids them
    to unprivileged users): bubblewrap's --disable-userns, so no sandbox can start inside."""
    return [str(bwrap_dir / "bwrap"), "--dev-bind", "/", "/", "--unshare-user",
            "--disable-userns", "--", *argv]


def oxi_toml(repo: Path, server: OpenAIServer, tmp_path: Path) -> None:
    (repo / "oxi.toml").write_text(tomli_w.dumps({
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "agents": {"codex": {"type": "codex", "kwargs": {
            "binary": str(codex_binary()), "provider": "scripted",
            "base_url": server.api_base_url, "api_key": "oxi-scripted-key",
            "codex_home": str(tmp_path / "codex-home"), "home": str(tmp_path / "home")}}},
        "forges": {"local": {"type": "local"}},
    }))


def test_a_sandbox_that_cannot_start_is_named_by_config_check_and_pauses_the_engine(
    tmp_path: Path, debian_bwrap_dir: Path
) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": "# r\n\n## Tier 1\n\n**T1-1 · hello**\n_x_\n"})
    env = {**os.environ, "OXI_RAISE_ERRORS": "0"}
    env.pop("PYTEST_CURRENT_TEST", None)

    def oxi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            without_user_namespaces(debian_bwrap_dir, [sys.executable, "-m", "oxi_core", *args]),
            cwd=repo.root, env=env, capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL, check=False)

    with OpenAIServer([ToolCall.write("hello.txt", "hello\n"), Text("done")]) as server:
        oxi_toml(repo.root, server, tmp_path)
        check = oxi("config", "check")
        tick = oxi("tick", "--json")
        assert server.turns == ()  # found before any model was paid for
    said = check.stdout + check.stderr
    assert check.returncode != 0, said
    assert "[agents.codex]" in said and "sandbox cannot run a command" in said, said
    assert "Creating new namespace failed" in said  # the cause, as bubblewrap put it
    assert "install bubblewrap 0.9 or newer" in said  # and the fix
    assert tick.returncode == 0, tick.stderr
    report = json.loads(tick.stdout)
    assert report["status"]["paused"] is True
    assert [t["status"] for t in report["status"]["tasks"]] == ["planned"]
    with Ledger(repo.root / ".oxi" / "oxi.db") as ledger:
        (paused,) = ledger.events(types=[ev.ENGINE_PAUSED])
        assert "Creating new namespace failed" in paused.payload["reason"]
        assert ledger.events(types=[ev.TASK_FAILED]) == []
