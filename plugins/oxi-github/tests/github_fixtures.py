"""Helpers for the GitHub plugin's tests: a working clone of the loopback GitHub's repository
with an oxi.toml for the github forge, and the worker that runs in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import tomli_w
from oxi_github.testing import LoopbackGitHub

from oxi_core.ledger import Ledger

HERE = Path(__file__).parent
NOTE_AGENT = [sys.executable, str(HERE / "agents" / "note_agent.py")]
TOKEN_ENV = "OXI_TEST_GITHUB_TOKEN"
PASSING_CRITIC = [[sys.executable, "-c", "pass"]]


def roadmap(*items: tuple[str, str, str]) -> str:
    lines = ["# roadmap", "", "## Tier 1", ""]
    for task_id, title, subtitle in items:
        lines += [f"**{task_id} · {title}**", f"_{subtitle}_", ""]
    return "\n".join(lines)


@attrs.frozen
class GitHubRepo:
    """A clone of the loopback's repository, configured to run oxi with the github forge."""

    root: Path
    hub: LoopbackGitHub

    @property
    def config(self) -> Path:
        return self.root / "oxi.toml"

    def env(self, **extra: str) -> dict[str, str]:
        return {TOKEN_ENV: self.hub.token, **extra}


def oxi_toml(hub: LoopbackGitHub, *, engine: Mapping[str, Any] | None = None,
             forge: Mapping[str, Any] | None = None, critic: list[list[str]] | None = None,
             agent: Mapping[str, Any] | None = None, agent_env: Mapping[str, str] | None = None,
             extra: Mapping[str, Any] | None = None) -> str:
    data: dict[str, Any] = {
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "engine": {"retry_base_s": 0.05, "retry_max_s": 0.2, **(engine or {})},
        "agents": {"worker": agent or {"type": "exec", "kwargs": {
            "argv": NOTE_AGENT, "timeout_s": 60, "env": dict(agent_env or {})}}},
        "forges": {"github": {"type": "github", "kwargs": {
            key: value for key, value in {
                "api_url": hub.api_url, "token": {"env": TOKEN_ENV}, "backoff_s": 0.01,
                "max_wait_s": 2.0, **(forge or {})}.items()
            if value is not None}}},  # a forge kwarg given as None is left out
    }
    if critic is not None:
        data["judges"] = {"critic": {"type": "command",
                                     "kwargs": {"commands": critic, "timeout_s": 60}}}
    data.update(extra or {})
    return tomli_w.dumps(data)




ROOMY_HOST = ('{"available_ram_bytes": 68719476736, "cpu_count": 16, '
              '"load_avg_5min": 0.0}')  # the probe's readings: concurrency is -j / the config's


def oxi_env(repo: GitHubRepo, shim: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of an `oxi` process for ``repo``: the token, and ``shim`` (a folder
    whose `git` records its argv) first on PATH."""
    env = {**os.environ, "OXI_RAISE_ERRORS": "0", "OXI_PROBE_READINGS": ROOMY_HOST,
           **repo.env(**extra)}
    env.pop("PYTEST_CURRENT_TEST", None)
    if shim is not None:
        env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
        env["GIT_ARGV_LOG"] = str(shim / "argv.log")
    return env


def run_oxi(repo: GitHubRepo, *args: str, shim: Path | None = None, timeout: float = 180.0,
            **extra: str) -> subprocess.CompletedProcess[str]:
    """`oxi ARGS` as its own process, in the clone."""
    return subprocess.run([sys.executable, "-m", "oxi_core", *args], cwd=repo.root, text=True,
                          capture_output=True, env=oxi_env(repo, shim, **extra),
                          timeout=timeout, stdin=subprocess.DEVNULL)


def git_shim(folder: Path) -> Path:
    """A `git` that appends its argv to $GIT_ARGV_LOG, then runs the real git: every command
    line oxi (and anything it starts) gives git is on record."""
    real = shutil.which("git")
    assert real is not None
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "git"
    shim.write_text(f'#!/bin/sh\nprintf \'%s\\n\' "$*" >> "$GIT_ARGV_LOG"\nexec {real} "$@"\n')
    shim.chmod(0o755)
    return folder


def ledger_of(repo: GitHubRepo) -> Ledger:
    return Ledger(repo.root / ".oxi" / "oxi.db")
