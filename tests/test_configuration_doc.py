"""docs/configuration.md lists every oxi.toml key with its type, default and meaning; it is
generated from the classes that take the keys, and this keeps it true."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import attrs

from oxi_core.policy import Policy
from oxi_core.registry import get_registry
from oxi_core.schema import installed_adapters, repository_distributions, schema, undocumented
from tests.unattended.support import run_oxi

ROOT = Path(__file__).resolve().parents[1]


def test_docs_configuration_md_is_what_the_schema_generates() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "configuration-doc"),
                           "--check"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_every_key_says_what_it_means() -> None:
    ours = repository_distributions(ROOT)
    sections = schema(get_registry(), distributions=ours, adapters=installed_adapters(ours))
    assert undocumented(sections) == []
    titles = {section.title for section in sections}
    assert {"[adapter]", "[engine]", "[roles]", "[worktree.hooks]", "[auto_improve]",
            '[agents.NAME] type = "exec"', '[judges.NAME] type = "command"',
            '[agents.NAME] type = "claude"', '[agents.NAME] type = "codex"',
            '[forges.NAME] type = "local"'} <= titles


def test_config_schema_json_lists_every_engine_key_oxi_accepts() -> None:
    result = run_oxi(["config", "schema", "--json"], cwd=ROOT)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["version"], document["command"]) == (1, "config schema")
    engine = next(s for s in document["sections"] if s["title"] == "[engine]")
    assert [key["name"] for key in engine["keys"]] == [f.name for f in attrs.fields(Policy)]
    heartbeat = next(k for k in engine["keys"] if k["name"] == "heartbeat_timeout_s")
    assert (heartbeat["type"], heartbeat["default"]) == ("float", "1800.0")


def test_the_starter_config_points_at_the_page() -> None:
    from oxi_core.starter import Detected, render_toml

    text = render_toml(Detected(ROOT, "exec", None, None, None, "origin", "main"))
    assert "docs/configuration.md" in text
    assert (ROOT / "docs" / "configuration.md").is_file()


def test_the_exec_agents_contract_is_on_the_page() -> None:
    from oxi_core.builtins.exec_agent import EX_NOPERM, EX_TEMPFAIL

    page = (ROOT / "docs" / "configuration.md").read_text()
    section = page.split('## `[agents.NAME] type = "exec"`', 1)[1].split("\n## ", 1)[0]
    said = " ".join(section.split())
    for promise in ("$OXI_PROMPT", "$OXI_TASK_ID", "$OXI_MAX_COST_USD",
                    f"{EX_TEMPFAIL} (EX_TEMPFAIL)", f"{EX_NOPERM} (EX_NOPERM)", "setup error",
                    "failure_kind"):
        assert promise in said, promise
