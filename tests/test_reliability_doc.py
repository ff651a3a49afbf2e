"""docs/reliability.md names real tests: every `file::function` it cites exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
# `tests/x.py::test_a` starts a file; a following `::test_b` in the same cell is in that file.
CITATION = re.compile(r"`(?P<file>[\w./-]+\.py)?::(?P<name>\w+)`")


def cited_tests(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        current: str | None = None
        for match in CITATION.finditer(line):
            current = match.group("file") or current
            assert current is not None, f"a `::{match.group('name')}` with no file before it"
            found.append((current, match.group("name")))
    return found


def test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


test_functions.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def test_every_test_the_reliability_table_cites_exists() -> None:
    cited = cited_tests(DOC.read_text(encoding="utf-8"))
    assert len(cited) > 30
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.is_file() or name not in test_functions(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"


def test_readme_and_security_page_link_the_reliability_table() -> None:
    assert "docs/reliability.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "reliability.md" in (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
