"""The runbook stays true: its kwargs table lists exactly the forge's oxi.toml keys, and the
README and the runbooks index point to it."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
from oxi_github.forge import GitHubForge

ROOT = Path(__file__).resolve().parents[3]
RUNBOOK = ROOT / "docs" / "runbooks" / "github.md"


def test_the_runbooks_kwargs_table_lists_every_kwarg_of_the_forge() -> None:
    text = RUNBOOK.read_text()
    table = text[text.index("| key | default | meaning |"):]
    table = table[: table.index("\n\n")]
    documented = {name for row in table.splitlines()[2:]
                  for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    kwargs = {field.alias for field in attrs.fields(GitHubForge) if field.init}
    assert documented == kwargs


def test_the_runbook_is_linked_from_the_readme_and_the_runbooks_index() -> None:
    assert "docs/runbooks/github.md" in (ROOT / "README.md").read_text()
    assert "(github.md)" in (ROOT / "docs" / "runbooks" / "README.md").read_text()
    assert "| `oxi-github` | forge `github`; source `github` |" in (ROOT / "README.md").read_text()
