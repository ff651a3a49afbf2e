"""Fixtures for the dashboard: one ledger written by real ticks for the whole module (copied
for tests that change it), and headless chromium from the operating system driven by
Playwright. A missing browser fails the test: it is never skipped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oxi_core.testing.repos import TestRepo
from tests.dashboard.support import build_repo

CHROMIUM = Path(os.environ.get("OXI_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "dashboard"


@pytest.fixture(scope="session")
def ledger_repo(tmp_path_factory: pytest.TempPathFactory) -> TestRepo:
    """Built once: every test that only reads shares it."""
    return build_repo(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def own_repo(ledger_repo: TestRepo, tmp_path: Path) -> TestRepo:
    """A copy of the shared repository (its ledger and transcripts) for a test that writes."""
    root = tmp_path / "copy"
    shutil.copytree(ledger_repo.root, root, symlinks=True,
                    ignore=shutil.ignore_patterns("worktrees"))
    origin = tmp_path / "copy.git"
    shutil.copytree(ledger_repo.origin, origin)
    repo = TestRepo(root, origin)
    repo.git("remote", "set-url", "origin", str(origin))
    return repo


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module, not per session: Playwright's sync API keeps an event loop running in this
    thread while it is open, and the tests after these call asyncio.run()."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: run scripts/install-browser (./dev test does), "
                    "or set OXI_CHROMIUM")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"], headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text)
              if message.type == "error" else None)
    opened.errors = errors
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
