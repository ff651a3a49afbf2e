"""The live GitHub tests are set up as seed T2-14 asks: a registered marker that ./dev test
deselects, and a nightly workflow that runs exactly them with a token secret."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_live_tests_are_marked_registered_and_deselected_by_default() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"]
    assert any(marker.startswith("live_github:") for marker in options["markers"])
    assert "-m 'not live_github'" in options["addopts"]
    live = (Path(__file__).parent / "test_github_live.py").read_text()
    assert "pytest.mark.live_github" in live and "skipif(not TOKEN" in live


def test_the_nightly_workflow_runs_them_with_the_token_secret() -> None:
    workflow = (ROOT / ".github" / "workflows" / "nightly.yml").read_text()
    assert "schedule:" in workflow
    assert "-m live_github" in workflow
    assert "secrets.OXI_LIVE_GITHUB_TOKEN" in workflow
    assert "test_github_live.py" in workflow
