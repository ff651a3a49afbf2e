"""Doc lint (seed T2-16): README.md, docs/ and hookspecs.md pass the Markdown linter with the
project's configuration ([tool.pymarkdown] in pyproject.toml), and every internal link and
anchor resolves, offline. External links are the nightly workflow's (.github/workflows/)."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHECKER: dict[str, Any] = runpy.run_path(str(ROOT / "scripts" / "check-doc-links"))


def test_the_docs_pass_the_markdown_linter() -> None:
    pymarkdown = Path(sys.executable).with_name("pymarkdown")
    result = subprocess.run([str(pymarkdown), "scan", "README.md", "hookspecs.md", "docs"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_linter_still_finds_what_the_configuration_keeps(tmp_path: Path) -> None:
    """The configuration is tuned, not switched off: the usual mistakes are still found."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n#### Skipped a level\n\n```\nno language\n```\n"
                    "| a | b |\n|---|---|\n| `x | y` | 1 |\n\n" + "word " * 30 + "\n")
    pymarkdown = Path(sys.executable).with_name("pymarkdown")
    result = subprocess.run([str(pymarkdown), "--config", str(ROOT / "pyproject.toml"), "scan",
                             str(page)], capture_output=True, text=True, timeout=120,
                            check=False)
    found = {line.split(": ")[1] for line in result.stdout.splitlines()}
    assert {"MD001", "MD022", "MD040", "MD056", "MD013"} <= found, result.stdout


def test_every_internal_link_and_anchor_resolves() -> None:
    files = CHECKER["pages"](ROOT)
    assert ROOT / "docs" / "dashboard.md" in files
    assert CHECKER["check_internal"](files, ROOT) == []


def test_the_link_checker_finds_missing_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "hookspecs.md").write_text("# Hooks\n\n## `register_agents(register)`\n")
    (tmp_path / "docs" / "a.md").write_text(
        "# A page\n\n## The dashboard's endpoints\n\n## Twice\n\n## Twice\n\n"
        "[ok](../hookspecs.md#register_agentsregister) [ok](#the-dashboards-endpoints) "
        "[ok](#twice-1) [ok](https://example.com/x) [ok](.)\n"
        "[gone](missing.md) [bad anchor](../hookspecs.md#nope) `[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n[ref]: ../README.md#nowhere\n")
    (tmp_path / "README.md").write_text("# Readme\n\nSee [a](docs/a.md#a-page).\n")
    problems = CHECKER["check_internal"](CHECKER["pages"](tmp_path), tmp_path)
    assert problems == [
        "docs/a.md:10: missing.md: no such file",
        "docs/a.md:10: ../hookspecs.md#nope: no heading #nope in hookspecs.md",
        "docs/a.md:14: ../README.md#nowhere: no heading #nowhere in README.md",
    ]


def test_anchors_are_githubs_slugs() -> None:
    slug = CHECKER["slug"]
    assert slug("`oxi status --json`") == "oxi-status---json"
    assert slug("The dashboard's endpoints") == "the-dashboards-endpoints"
    assert slug("`bench_dashboard.py`: the dashboard on 1,000,000 events") == \
        "bench_dashboardpy-the-dashboard-on-1000000-events"
    assert slug("A [linked](x.md) heading") == "a-linked-heading"
