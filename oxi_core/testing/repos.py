"""Real git repositories for tests: a working clone with a bare ``origin``, and its oxi.toml."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import attrs

IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
}


def run_git(args: list[str], cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY},
    )
    return result.stdout.strip()


@attrs.frozen
class TestRepo:
    root: Path
    origin: Path

    @property
    def config(self) -> Path:
        return self.root / "oxi.toml"

    def git(self, *args: str) -> str:
        return run_git(list(args), self.root)

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def commit_and_push(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", "origin", "main")

    def origin_file(self, relative: str, ref: str = "main") -> str | None:
        result = subprocess.run(
            ["git", "show", f"{ref}:{relative}"], cwd=self.origin, capture_output=True, text=True
        )
        return result.stdout if result.returncode == 0 else None

    def origin_log(self, ref: str = "main") -> list[str]:
        return run_git(["log", "--format=%s", ref], self.origin).splitlines()


def make_repo(base: Path, files: Mapping[str, str], *, name: str = "repo") -> TestRepo:
    """A clone at ``base/name`` of a bare ``base/name.git``, with ``files`` committed and pushed."""
    origin = base / f"{name}.git"
    root = base / name
    run_git(["init", "-q", "--bare", "--initial-branch=main", str(origin)], base)
    run_git(["clone", "-q", str(origin), str(root)], base)
    repo = TestRepo(root, origin)
    for relative, text in {".gitignore": ".oxi/\n__pycache__/\n", **files}.items():
        repo.write(relative, text)
    repo.commit_and_push("initial commit")
    return repo


def exec_agent_toml(
    agent_argv: list[str],
    *,
    critic: list[list[str]] | None = None,
    engine: Mapping[str, object] | None = None,
    agent_env: Mapping[str, str] | None = None,
    extra: str = "",
) -> str:
    """An oxi.toml with an ``exec`` worker, an optional ``command`` critic, the local forge."""
    import tomli_w

    data: dict[str, object] = {
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "engine": dict(engine or {}),
        "agents": {
            "worker": {
                "type": "exec",
                "kwargs": {"argv": agent_argv, "timeout_s": 60, "env": dict(agent_env or {})},
            }
        },
        "forges": {"local": {"type": "local"}},
    }
    if critic is not None:
        data["judges"] = {
            "critic": {"type": "command", "kwargs": {"commands": critic, "timeout_s": 60}}
        }
    return tomli_w.dumps(data) + extra

