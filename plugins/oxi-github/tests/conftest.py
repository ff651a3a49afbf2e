"""Fixtures for the GitHub plugin's tests: a loopback GitHub (real git over HTTP, REST and
GraphQL on 127.0.0.1, stopped after each test) and a working clone of its repository."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from github_fixtures import TOKEN_ENV, GitHubRepo, oxi_toml, roadmap
from oxi_github.testing import LoopbackGitHub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LoopbackGitHub]:
    with LoopbackGitHub(tmp_path / "hub") as server:
        yield server


@pytest.fixture
def github_repo(tmp_path: Path, hub: LoopbackGitHub,
                monkeypatch: pytest.MonkeyPatch) -> Callable[..., GitHubRepo]:
    """A clone of the loopback's repository holding ``roadmap_text`` (and ``files``), with an
    oxi.toml for the github forge; the token is in $OXI_TEST_GITHUB_TOKEN."""
    monkeypatch.setenv(TOKEN_ENV, hub.token)

    def make(roadmap_text: str = roadmap(("T1-1", "say hello", "n")), *,
             files: Mapping[str, str] | None = None, **toml: Any) -> GitHubRepo:
        hub.seed({".gitignore": ".oxi/\n__pycache__/\noxi.toml\n", "README.md": "demo\n",
                  "roadmap.md": roadmap_text, **(files or {})})
        root = hub.clone(tmp_path / "clone")
        (root / "oxi.toml").write_text(oxi_toml(hub, **toml))
        return GitHubRepo(root, hub)

    return make


def _json_body(request: Any) -> Any:
    try:
        return json.loads(request.body) if request.body else None
    except ValueError:
        return request.body


def same_json_body(left: Any, right: Any) -> None:
    """pytest-recording: two requests match when their JSON bodies are equal (key order and
    spacing aside)."""
    assert _json_body(left) == _json_body(right)


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    vcr.register_matcher("json", same_json_body)
