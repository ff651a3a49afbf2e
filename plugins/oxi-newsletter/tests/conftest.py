"""Pytest fixtures: a loopback site (stopped after each test) and a plugin context."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from newsletter_fixtures import Context
from oxi_newsletter.testing import Site


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as running:
        yield running


@pytest.fixture
def context(tmp_path: Path) -> Context:
    return Context(tmp_path / "repo")
