"""Shared fixtures: real git repositories with a bare origin, and an oxi config for them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from oxi_core.config import OxiConfig, load_config
from oxi_core.engine.engine import Engine, TickReport
from oxi_core.testing.repos import TestRepo, exec_agent_toml, make_repo

AGENTS = Path(__file__).parent / "agents"
SCRIPTED_AGENT = [sys.executable, str(AGENTS / "scripted_agent.py")]
CHECK_ANSWERS = [[sys.executable, str(AGENTS / "check_answers.py")]]


def roadmap(*items: tuple[str, str, str]) -> str:
    lines = ["# roadmap", "", "## Tier 1", ""]
    for task_id, title, subtitle in items:
        lines += [f"**{task_id} · {title}**", f"_{subtitle}_", ""]
    return "\n".join(lines)


@pytest.fixture
def repo_factory(tmp_path: Path) -> Callable[..., TestRepo]:
    counter = iter(range(100))

    def make(roadmap_text: str, *, files: dict[str, str] | None = None,
             engine: dict[str, object] | None = None, critic: bool = True,
             agent_env: dict[str, str] | None = None, extra_toml: str = "") -> TestRepo:
        name = f"repo{next(counter)}"
        repo = make_repo(tmp_path, {"roadmap.md": roadmap_text, **(files or {})}, name=name)
        toml = exec_agent_toml(
            SCRIPTED_AGENT, critic=CHECK_ANSWERS if critic else None,
            engine={"retry_base_s": 0.05, "retry_max_s": 0.2, **(engine or {})},
            agent_env=agent_env,
        )
        repo.write("oxi.toml", toml + extra_toml)
        return repo

    return make


def load(repo: TestRepo) -> OxiConfig:
    return load_config(repo.config)


def tick(engine: Engine) -> TickReport:
    return asyncio.run(engine.run_once())


@pytest.fixture
def prompt_log(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    folder.mkdir()
    return folder
