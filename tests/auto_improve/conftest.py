"""Fixtures for auto-improve: a repository whose oxi.toml configures test sources and the
scripted judge, with the registry that provides them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tomli_w

from oxi_core import registry as registry_module
from oxi_core.config import OxiConfig, load_config
from oxi_core.plugins import reset_plugins
from oxi_core.testing.repos import TestRepo, exec_agent_toml, make_repo
from tests.auto_improve.support import registry_with_test_plugins

ROADMAP = """# roadmap

## Tier 0

**T0-1 · Heartbeat reaper for zombie dispatches**
_Return tasks whose worker died to planned, and never touch a live one._

The reaper lives in `oxi_core/engine/reaper.py`.

## Tier 1

**T1-1 · File overlap dispatch gate**
_Defer a planned task whose files overlap an open pull request._

## Tier 2

**T2-A7 · An older accepted proposal**
_Proposal ids never repeat._
"""


@pytest.fixture
def test_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Config loading (and the CLI) sees the test plugins as if they were installed."""
    reset_plugins()
    monkeypatch.setattr(registry_module, "_registry", registry_with_test_plugins())
    yield
    reset_plugins()


@pytest.fixture
def ai_repo(tmp_path: Path,
            test_registry: None) -> Callable[..., tuple[TestRepo, OxiConfig | None]]:
    def make(*, sources: dict[str, dict[str, object]], judge: dict[str, object] | None = None,
             settings: dict[str, object] | None = None,
             roadmap: str = ROADMAP, load: bool = True) -> tuple[TestRepo, OxiConfig | None]:
        name = f"repo{len(list(tmp_path.iterdir()))}"
        repo = make_repo(tmp_path, {"roadmap.md": roadmap}, name=name)
        extra = {"sources": sources,
                 "inference": {"gateway": {"type": "scripted_judge", "kwargs": judge or {}}},
                 "auto_improve": settings or {}}
        repo.write("oxi.toml", exec_agent_toml(["true"]) + "\n" + tomli_w.dumps(extra))
        return repo, load_config(repo.config) if load else None

    return make
