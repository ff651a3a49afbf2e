"""Parsing and rewriting roadmap.md, on the canonical and the flattened (seed) formats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from oxi_core.cli import cli
from oxi_core.errors import RoadmapError
from oxi_core.roadmap import (
    extract_files,
    load_roadmap,
    parse_roadmap,
    prunable_ids,
    remove_items,
)
from oxi_core.testing.repos import make_repo

SEED = Path(__file__).parent / "fixtures" / "seed-roadmap.md"
ROOT = Path(__file__).resolve().parents[1]

SEED_OPEN = {
    "T0-104": (0, "file-overlap dispatch gate"),
    "T0-105": (0, "heartbeat reaper for zombie dispatches"),
    "T1-19": (1, "adapter loader supports constructor args via TOML config"),
    "T2-43": (2, "CPU-aware concurrency probe"),
    "T2-44": (2, "auto-merge enforcement on critic pass"),
    "T2-45": (2, "oxi v3 saturate continuous-dispatch CLI command"),
    "T2-12": (2, "mypy strict typing pass"),
    "T2-13": (2, "coverage gate: 85% global"),
    "T2-14": (2, "nightly integration test against live GitHub"),
    "T2-15": (2, "benchmark regression guard"),
    "T2-16": (2, "doc lint (lychee + markdownlint)"),
    "T2-30": (2, "agentic adapter protocol + ClaudeCodeAdapter shim"),
    "T2-31": (2, "codex adapter skeleton + version pin smoke test"),
    "T2-32": (2, "codex JSONL event parser + event-type mapping"),
    "T2-33": (2, "codex session-file fallback for reasoning tokens"),
    "T2-34": (2, "codex cost calculation + DispatchResult normalizer"),
    "T2-35": (2, "codex shadow-run harness + agreement metric"),
    "T2-36": (2, "attach to mac mini litellm gateway + key provisioning runbook"),
    "T2-37": (2, "inference gateway client + non-streaming cost-header lock"),
    "T2-38": (2, "migrate heartbeat reasoning to inference gateway"),
    "T2-39": (2, "routing.py + defaults/routing.yaml"),
    "T2-40": (2, "promote one trivial task class to codex via routing"),
    "T2-41": (2, "xAI Grok as InferenceGateway target (via LiteLLM)"),
    "T2-42": (2, "OpenRouter as InferenceGateway target (via LiteLLM)"),
    "T1-B1": (1, "auto_external skeleton + adapter Protocol method + CLI subcommand stubs"),
    "T1-B2": (1, "GitHub source fetcher"),
    "T1-B3": (1, "Newsletter source fetcher"),
    "T1-B4": (1, "X source fetcher (via X skill)"),
    "T1-B5": (1, "Ranking pipeline (no LLM yet)"),
    "T1-B6": (1, "LLM judge with rubric + fabricated-module hard filter"),
    "T1-B7": (1, "Three-layer dedup"),
    "T1-B8": (1, "Emit step — ledger events + Markdown digest writer"),
    "T1-B9": (1, "auto_improve_health — acceptance-ratio tracker + auto-pause"),
    "T1-B10": (1, "Claude Code Routine config + entry-point script"),
    "T1-B11": (1, "GitHub Actions schedule fallback + watchdog (ships only if Routines GA "
                  "slips)"),
}
SEED_DONE = {
    "T0-1", "T0-2", "T0-11", "T0-101", "T0-102", "T0-103", "T1-3", "T1-4", "T1-5", "T1-6",
    "T1-7", "T1-12", "T1-13", "T1-14", "T1-15", "T1-16", "T1-17", "T1-18", "T2-8", "T2-9",
    "T2-10", "T2-11", "T3-1", "T3-2",
}


def test_seed_roadmap_lists_exactly_its_open_items_with_ids_tiers_and_titles() -> None:
    roadmap = load_roadmap(SEED)
    assert {i.id: (i.tier, i.title) for i in roadmap.open_items} == SEED_OPEN
    assert roadmap.done_ids == SEED_DONE
    assert roadmap.warnings == ()


def test_oxi_roadmap_list_json_on_the_seed_marks_done_ids_as_done() -> None:
    result = CliRunner().invoke(cli, ["roadmap", "list", "--json", "--all", "--file",
                                      str(SEED)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    open_items = {i["id"]: (i["tier"], i["title"]) for i in data["items"] if not i["done"]}
    done = {i["id"] for i in data["items"] if i["done"]}
    assert open_items == SEED_OPEN
    assert done == SEED_DONE
    first = data["items"][0]
    assert set(first) >= {"id", "tier", "title", "subtitle", "section", "line", "done"}
    assert first["section"].startswith("Tier 0")
    assert first["line"] == 13
    assert first["subtitle"].startswith("before each dispatch_one() claims")


def test_flattened_one_line_item_keeps_its_status_text_as_subtitle() -> None:
    item = load_roadmap(SEED).get("T2-12")
    assert item is not None
    assert item.subtitle.startswith("PR #95 (initial allow-list")


CANONICAL = """\
# Roadmap

## Tier 0 — blockers

**T0-1 · fix the installer**
_`scripts/install.sh` fails on a fresh machine; see `oxi_core/cli.py`._

More detail about the installer
over two lines.

- **T1-B5 · ranking pipeline**
  *bm25 + vectors in oxi_core/auto_improve/ranking.py*

## Done
- T0-9, T1-2
"""


def test_canonical_items_with_letters_in_ids_subtitles_bodies_and_files() -> None:
    roadmap = parse_roadmap(CANONICAL)
    first, second = roadmap.open_items
    assert (first.id, first.tier, first.title) == ("T0-1", 0, "fix the installer")
    assert first.subtitle.startswith("`scripts/install.sh` fails")
    assert first.body == "More detail about the installer\nover two lines."
    assert first.section == "Tier 0 — blockers"
    assert first.files == ("oxi_core/cli.py", "scripts/install.sh")
    assert (second.id, second.tier, second.line) == ("T1-B5", 1, 11)
    assert second.files == ("oxi_core/auto_improve/ranking.py",)
    assert roadmap.done_ids == {"T0-9", "T1-2"}
    assert roadmap.warnings == ()


def test_parsing_is_deterministic() -> None:
    assert parse_roadmap(CANONICAL) == parse_roadmap(CANONICAL)


@pytest.mark.parametrize(("line", "fragment"), [
    ("**T1-7 · **", "has no title"),
    ("**T-1 · bad tier**", "bad id 'T-1'"),
    ("**Tx-3 · bad tier**", "bad id 'Tx-3'"),
    ("**T1-8 missing separator**", "no ' · '"),
    ("T1-9 - dash instead of dot", "no ' · '"),
])
def test_malformed_item_line_is_a_warning_with_its_line_number(line: str, fragment: str) -> None:
    text = f"# r\n\n**T1-1 · fine**\n_ok_\n\n{line}\n_sub_\n"
    roadmap = parse_roadmap(text)
    assert [i.id for i in roadmap.open_items] == ["T1-1"]
    (warning,) = roadmap.warnings
    assert warning.line == 6
    assert fragment in warning.message
    assert warning.severity == "error"


def test_duplicate_id_is_a_warning_and_the_first_item_wins() -> None:
    text = "**T1-1 · first**\n_a_\n\n**T1-1 · second**\n_b_\n"
    roadmap = parse_roadmap(text)
    assert [(i.id, i.title) for i in roadmap.open_items] == [("T1-1", "first")]
    (warning,) = roadmap.warnings
    assert warning.line == 4 and "duplicate id T1-1" in warning.message


def test_broken_separator_puts_the_id_in_unreadable_ids() -> None:
    roadmap = parse_roadmap("**T1-1 · fine**\n_a_\n\n**T1-2 broken**\n_b_\n")
    assert roadmap.unreadable_ids == {"T1-2"}
    assert roadmap.get("T1-2") is None


def test_missing_italic_subtitle_is_a_mild_warning() -> None:
    roadmap = parse_roadmap("**T1-1 · fine**\nplain text\n")
    (warning,) = roadmap.warnings
    assert warning.severity == "warning" and "no italic subtitle" in warning.message
    assert roadmap.errors == []


def test_unreadable_file_raises_roadmap_error_saying_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(RoadmapError, match="create roadmap.md"):
        load_roadmap(tmp_path / "roadmap.md")
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"\xff\xfe\x00 not utf-8")
    with pytest.raises(RoadmapError, match="UTF-8"):
        load_roadmap(bad)


def test_files_named_in_text_are_extracted_but_not_urls() -> None:
    text = "see https://example.invalid/a.py and `docs/x.md`, also oxi_core/engine/tick.py."
    assert extract_files(text) == ("docs/x.md", "oxi_core/engine/tick.py")


def test_lint_exits_non_zero_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "roadmap.md"
    path.write_text("**T1-1 · ok**\n_a_\n\n**T-2 · bad**\n_b_\n")
    result = CliRunner().invoke(cli, ["roadmap", "lint", "--file", str(path)])
    assert result.exit_code == 1
    assert f"{path}:4: error: bad id 'T-2'" in result.output


def test_the_projects_own_roadmap_parses_without_warnings() -> None:
    roadmap = load_roadmap(ROOT / "roadmap.md")
    assert roadmap.warnings == ()
    assert len(roadmap.open_items) >= 10
    assert all(item.subtitle for item in roadmap.open_items)


# -- rewriting ------------------------------------------------------------------------------


def test_remove_items_keeps_everything_else_byte_for_byte() -> None:
    text = CANONICAL.replace("\n", "\r\n").rstrip("\r\n")  # CRLF, no final newline
    out = remove_items(text, {"T0-1"})
    assert "T0-1" not in out.split("## Done")[0]
    expected = text.replace(
        "**T0-1 · fix the installer**\r\n"
        "_`scripts/install.sh` fails on a fresh machine; see `oxi_core/cli.py`._\r\n\r\n"
        "More detail about the installer\r\nover two lines.\r\n\r\n", "")
    assert out == expected


def test_remove_items_of_the_last_item_without_final_newline() -> None:
    text = "# r\n\n**T1-1 · a**\n_x_\n\n**T1-2 · b**\n_y_"
    assert remove_items(text, {"T1-2"}) == "# r\n\n**T1-1 · a**\n_x_\n\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(SEED_OPEN)), unique=True))
def test_removing_then_parsing_never_resurrects_and_keeps_the_rest(ids: list[str]) -> None:
    text = SEED.read_text()
    out = remove_items(text, ids)
    after = parse_roadmap(out)
    assert not {i.id for i in after.open_items} & set(ids)
    assert {i.id for i in after.open_items} == set(SEED_OPEN) - set(ids)
    assert after.done_ids == SEED_DONE
    assert remove_items(text, []) == text


# -- prune ------------------------------------------------------------------------------------


def _commit(repo_root: Path, message: str, files: dict[str, str]) -> None:
    for name, content in files.items():
        (repo_root / name).write_text(content)
    subprocess.run(["git", "add", "-A"], cwd=repo_root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo_root, check=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@l",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@l",
                        "PATH": "/usr/bin:/bin"})


ROADMAP = """\
# r

**T1-1 · one**
_a_

**T1-2 · two**
_b_

**T1-10 · ten**
_c_

**T1-3 · three**
_d_
"""


def test_prune_removes_only_items_named_by_substantive_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": ROADMAP})
    _commit(repo.root, "T1-1: implement one", {"one.py": "1\n"})  # substantive
    _commit(repo.root, "roadmap: reword T1-2", {"roadmap.md": ROADMAP + "\n"})  # roadmap only
    repo.git("checkout", "-q", "-b", "side")
    _commit(repo.root, "side work", {"side.py": "s\n"})
    repo.git("checkout", "-q", "main")
    _commit(repo.root, "main work", {"main.py": "m\n"})
    repo.git("merge", "-q", "--no-ff", "-m", "Merge T1-3 side branch", "side")  # a merge
    text = (repo.root / "roadmap.md").read_text()
    assert prunable_ids(repo.root, text) == ["T1-1"]  # not T1-10, not T1-2, not T1-3

    (repo.root / "oxi.toml").write_text(
        '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n')
    runner = CliRunner()
    dry = runner.invoke(cli, ["--config", str(repo.root / "oxi.toml"), "roadmap", "prune",
                              "--dry-run", "--ref", "main"])
    assert dry.exit_code == 0, dry.output
    assert "would remove T1-1" in dry.output
    assert (repo.root / "roadmap.md").read_text() == text
    real = runner.invoke(cli, ["--config", str(repo.root / "oxi.toml"), "roadmap", "prune",
                               "--ref", "main"])
    assert real.exit_code == 0, real.output
    assert (repo.root / "roadmap.md").read_text() == remove_items(text, ["T1-1"])
