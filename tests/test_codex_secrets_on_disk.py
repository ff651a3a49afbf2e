"""The Codex API key never lands on disk (issue 9.6a).

Seen in fault injection: after codex runs that ended early, ``CODEX_HOME/shell_snapshots/*.sh``
(mode 644) held ``declare -x OXI_CODEX_API_KEY="<secret>"``: Codex snapshots the environment of
its login shell and removes the snapshot only when it shuts down cleanly. Here real codex runs
end every way oxi ends them (killed at its timeout while a command runs, refused with a 401, a
success) through `oxi tick`, and then every file oxi or the agent left is searched for the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from oxi_core.testing.agent_clis import codex_binary
from oxi_core.testing.model_server import ErrorReply, Script, Text, ToolCall
from oxi_core.testing.openai_server import OpenAIServer
from oxi_core.testing.repos import make_repo
from tests.conftest import roadmap

pytestmark = [pytest.mark.real_cli,
              pytest.mark.skipif(codex_binary() is None, reason="run scripts/install-agent-clis")]

SECRET = "sk-oxi-codex-test-7d1f0c9e2b"
KEY_VAR = "OXI_TEST_CODEX_KEY"


def oxi(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, KEY_VAR: SECRET, "OXI_RAISE_ERRORS": "0"}
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run([sys.executable, "-m", "oxi_core", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


def files_holding(secret: str, *roots: Path) -> list[str]:
    """Every file under ``roots`` whose bytes contain ``secret`` (SQLite files and their WAL
    included)."""
    needle = secret.encode()
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(str(path))
    return found


def test_no_file_oxi_or_codex_leaves_holds_the_key_after_killed_refused_and_good_runs(
    tmp_path: Path,
) -> None:
    codex_home, home = tmp_path / "codex-home", tmp_path / "home"
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-5", "say hello", "hello.txt"))})
    script = Script([
        # The first run is killed at agent_timeout_s while its command runs (before codex's own
        # 10 s yield would hand the still-running command back to the model).
        ToolCall.run("sleep 60"),
        ErrorReply.unauthorized(),  # the retry is refused: a setup error, the engine pauses
        ToolCall.write("hello.txt", "hello\n"), Text("done"),  # after `oxi resume`
    ])
    with OpenAIServer(script) as server:
        repo.write("oxi.toml", tomli_w.dumps({
            "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
            "engine": {"agent_timeout_s": 8, "stall_timeout_s": 15, "startup_timeout_s": 15,
                       "heartbeat_timeout_s": 30, "retry_base_s": 0.05, "retry_max_s": 0.1},
            "agents": {"codex": {"type": "codex", "kwargs": {
                "binary": str(codex_binary()), "provider": "scripted",
                "base_url": server.api_base_url, "api_key": {"env": KEY_VAR},
                "codex_home": str(codex_home), "home": str(home)}}},
            "forges": {"local": {"type": "local"}},
        }))
        runs = [oxi(args, repo.root) for args in (
            ["tick", "--json"], ["tick", "--json"], ["resume"], ["tick", "--json"])]
    assert [run.returncode for run in runs] == [0, 0, 0, 0], runs[-1].stderr
    killed, refused, _, good = (json.loads(run.stdout) for run in
                                (runs[0], runs[1], runs[1], runs[3]))
    assert [t["status"] for t in killed["status"]["tasks"]] == ["retrying"], killed["status"]
    assert killed["status"]["retrying"][0]["last_error"].startswith("timed out")
    assert refused["status"]["paused"] is True
    assert good["tick"]["dispatched"] == ["T1-5"]
    assert [t["status"] for t in good["status"]["tasks"]] == ["in_review"]
    outputs = [run.stdout + run.stderr for run in runs]
    assert codex_home.is_dir() and (repo.root / ".oxi" / "oxi.db").is_file()
    assert files_holding(SECRET, repo.root, repo.origin, codex_home, home) == []
    assert not any(SECRET in out for out in outputs)
