"""`oxi route explain`: which rule matched a task and why, as a whole process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.inference.support import TWO_AGENTS_TOML, git_folder, oxi

ROADMAP = ("# roadmap\n\n## Tier 2\n\n**T2-16 · doc-lint for the docs folder**\n_check links_\n\n"
           "**T2-17 · Add retries**\n_backoff_\n")


def setup(tmp_path: Path) -> Path:
    return git_folder(tmp_path, TWO_AGENTS_TOML, ROADMAP)


def test_route_explain_names_the_rule_that_matched_and_why(tmp_path: Path) -> None:
    done = oxi(setup(tmp_path), "route", "explain", "T2-16")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "T2-16 (tier 2): doc-lint for the docs folder"
    assert lines[2].startswith(" -> doc-tier-2-to-codex (")
    assert lines[2].endswith("matches: tier 2, title word 'doc' starts with 'doc'")
    assert lines[3] == "    default: not reached"
    assert lines[4].startswith("dispatch: agent codex, model exec, fallback claude [")


def test_route_explain_json_for_a_task_no_special_rule_matches(tmp_path: Path) -> None:
    done = oxi(setup(tmp_path), "route", "explain", "T2-17", "--json")
    report = json.loads(done.stdout)
    assert [(r["name"], r["matched"], r["chosen"]) for r in report["rules"]] == [
        ("doc-tier-2-to-codex", False, False), ("default", True, True)]
    assert report["rules"][0]["reason"] == "no title word starts with doc"
    assert report["dispatch"]["agent"] == "claude"


def test_route_explain_for_an_inference_role_and_an_unknown_task(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    done = oxi(folder, "route", "explain", "T2-16", "--role", "critic")
    assert "calls: nothing (configured inference targets: none)" in done.stdout
    missing = oxi(folder, "route", "explain", "T9-9")
    assert missing.returncode != 0
    assert "T9-9 is neither in" in missing.stderr


def test_route_explain_reports_a_broken_routing_file_with_its_line(tmp_path: Path) -> None:
    folder = setup(tmp_path)
    (folder / "routing.yaml").write_text("roles:\n  worker:\n    - adapter: codex\n"
                                         "      match: {tier: [x]}\n")
    done = oxi(folder, "route", "explain", "T2-16")
    assert done.returncode != 0
    assert f"{folder / 'routing.yaml'}:4" in done.stderr
    assert "expected a tier number" in done.stderr
