"""roadmap.md: parsing (canonical and flattened seed forms), problems, rewriting, pruning."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from oxi_core.cli import cli
from oxi_core.errors import GitError, RoadmapError
from oxi_core.roadmap import (
    Roadmap,
    RoadmapItem,
    Severity,
    extract_files,
    find_prunable,
    load_roadmap,
    parse_roadmap,
    priority_key,
    prunable_ids,
    remove_items,
)
from oxi_core.testing.repos import IDENTITY, make_repo

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


# -- the seed (flattened form) ------------------------------------------------------------


def test_seed_roadmap_lists_exactly_its_open_items_with_ids_tiers_and_titles() -> None:
    roadmap = load_roadmap(SEED)
    assert {i.id: (i.tier, i.title) for i in roadmap.open_items} == SEED_OPEN
    assert len(roadmap.open_items) == len(SEED_OPEN)  # no id twice
    assert roadmap.done_ids == SEED_DONE
    assert {i.id for i in roadmap.items if i.done} == SEED_DONE
    assert roadmap.warnings == ()


def test_seed_items_keep_file_order_sections_and_line_spans() -> None:
    roadmap = load_roadmap(SEED)
    ids = [i.id for i in roadmap.open_items]
    assert ids[:3] == ["T0-104", "T0-105", "T1-19"]
    assert ids[-1] == "T1-B11"
    first = roadmap.open_items[0]
    assert (first.line, first.end_line) == (13, 14)
    assert first.section == "Tier 0 — operational pain from 2026-04-25 dogfood"
    assert first.subtitle.startswith("before each dispatch_one() claims a planned task")
    assert first.body == ""  # the flattened description line is the (lost-emphasis) subtitle
    b5 = roadmap.get("T1-B5")
    assert b5 is not None
    assert b5.section == "Tier 1 — auto-improve subsystem (#128)"


def test_flattened_one_line_items_keep_their_status_text_as_subtitle() -> None:
    roadmap = load_roadmap(SEED)
    t212 = roadmap.get("T2-12")
    assert t212 is not None
    assert t212.subtitle == ("PR #95 (initial allow-list: adapter, db, v3.notification) + PR #99 "
                             "(6-module ratchet expansion) — auto-merge queued, awaiting CI.")
    assert (t212.line, t212.end_line, t212.body) == (28, 28, "")
    t214 = roadmap.get("T2-14")
    assert t214 is not None
    assert t214.subtitle.startswith("PR #105 — daily cron")


def test_one_line_item_without_pr_splits_at_the_dash_but_described_items_do_not() -> None:
    roadmap = parse_roadmap("T1-1 · fix it — in progress\nT1-2 · emit step — digest\ndetail\n")
    one, two = roadmap.open_items
    assert (one.title, one.subtitle) == ("fix it", "in progress")
    assert (two.title, two.subtitle) == ("emit step — digest", "detail")


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


# -- the canonical form --------------------------------------------------------------------

CANONICAL = """\
# Roadmap

## Tier 0 — blockers

**T0-1 · fix the installer**
_`scripts/install.sh` fails on a fresh machine; see `oxi_core/cli.py`._

More detail about the installer
over two lines.

- **T1-B5 · ranking pipeline**
  *bm25 + vectors in oxi_core/auto_improve/ranking.py*

## Tier 2

**T2-A3 · polish**
_small things_

## Done
- T0-9, T1-2
"""


def test_canonical_items_with_letters_in_ids_subtitles_bodies_and_files() -> None:
    roadmap = parse_roadmap(CANONICAL)
    first, second, third = roadmap.open_items
    assert (first.id, first.tier, first.title) == ("T0-1", 0, "fix the installer")
    assert first.subtitle.startswith("`scripts/install.sh` fails")
    assert first.body == "More detail about the installer\nover two lines."
    assert first.section == "Tier 0 — blockers"
    assert (first.line, first.end_line) == (5, 9)
    assert first.files == ("oxi_core/cli.py", "scripts/install.sh")
    assert (second.id, second.tier, second.line) == ("T1-B5", 1, 11)
    assert second.subtitle == "bm25 + vectors in oxi_core/auto_improve/ranking.py"
    assert second.files == ("oxi_core/auto_improve/ranking.py",)
    assert (third.id, third.tier) == ("T2-A3", 2)
    assert roadmap.done_ids == {"T0-9", "T1-2"}
    assert roadmap.get("T0-9") == RoadmapItem(id="T0-9", tier=0, title="", done=True,
                                             section="Done", line=20, end_line=20)
    # T1-B5 sits under "Tier 0": readable, but worth a mild warning.
    (warning,) = roadmap.warnings
    assert (warning.line, warning.severity, warning.item_id) == (11, Severity.WARNING, "T1-B5")
    assert roadmap.errors == ()


def test_priority_is_lower_tier_first_then_file_order() -> None:
    roadmap = parse_roadmap(CANONICAL)
    assert [i.id for i in roadmap.by_priority()] == ["T0-1", "T1-B5", "T2-A3"]
    text = "**T2-1 · a**\n_a_\n**T0-7 · b**\n_b_\n**T2-0 · c**\n_c_\n**T0-2 · d**\n_d_\n"
    items = parse_roadmap(text).open_items
    assert [i.id for i in items] == ["T2-1", "T0-7", "T2-0", "T0-2"]  # file order kept
    assert [i.id for i in sorted(items, key=priority_key)] == ["T0-7", "T0-2", "T2-1", "T2-0"]


def test_parsing_is_deterministic_and_line_endings_do_not_matter() -> None:
    assert parse_roadmap(CANONICAL) == parse_roadmap(CANONICAL)
    crlf = parse_roadmap(CANONICAL.replace("\n", "\r\n"))
    lone_cr = parse_roadmap(CANONICAL.replace("\n", "\r"))
    assert crlf == parse_roadmap(CANONICAL) == lone_cr


def test_a_byte_order_mark_does_not_hide_the_first_line() -> None:
    roadmap = parse_roadmap("\ufeff**T1-1 · first**\r\n_a_\r\n")
    assert [i.id for i in roadmap.open_items] == ["T1-1"]


def test_inline_status_after_a_bold_title_and_bold_id_variant() -> None:
    roadmap = parse_roadmap("**T1-1 · one** — PR #3 open\n\n**T1-2** · two\n_sub_\n")
    one, two = roadmap.open_items
    assert (one.title, one.subtitle) == ("one", "— PR #3 open")
    assert (two.title, two.subtitle) == ("two", "sub")
    assert roadmap.warnings == ()


def test_fenced_code_and_comments_are_body_not_items_or_headings() -> None:
    text = ("**T1-1 · one**\n_a_\n\n```bash\n# not a heading\n**T1-9 · not an item**\n```\n"
            "<!--\n**T1-8 · commented out**\n-->\n\n**T1-2 · two**\n_b_\n")
    roadmap = parse_roadmap(text)
    assert [i.id for i in roadmap.open_items] == ["T1-1", "T1-2"]
    assert "# not a heading" in roadmap.open_items[0].body
    assert roadmap.warnings == ()


def test_prose_starting_with_an_id_or_a_template_is_body() -> None:
    text = ("**T1-1 · one**\n_a_\n\nT2-37 lands first, then this.\n"
            "**T{tier}-{N} · {title}** is the shape; so is T<tier>-<n> · title.\n")
    roadmap = parse_roadmap(text)
    assert roadmap.open_items[0].body.startswith("T2-37 lands first, then this.\n**T{tier}")
    assert roadmap.warnings == ()


# -- the Done section ----------------------------------------------------------------------


def test_done_section_full_items_nested_headings_and_where_it_ends() -> None:
    text = ("## Done\n\n**T0-1 · shipped thing**\n_long ago_\n\n### 0.1.0\n- T0-2, T0-3\n\n"
            "The alpha shipped; T0-4 is mentioned in prose only.\n\n"
            "## Tier 1\n\n- T1-1, T1-2\n\n**T1-3 · open**\n_x_\n")
    roadmap = parse_roadmap(text)
    assert roadmap.done_ids == {"T0-1", "T0-2", "T0-3"}
    shipped = roadmap.get("T0-1")
    assert shipped is not None
    assert shipped.title == "shipped thing"
    assert shipped.done
    assert [i.id for i in roadmap.open_items] == ["T1-3"]
    assert roadmap.warnings == ()


def test_an_id_both_open_and_done_is_done_with_an_error() -> None:
    roadmap = parse_roadmap("**T1-1 · still here**\n_a_\n\n## Done\n- T1-1\n")
    item = roadmap.get("T1-1")
    assert item is not None
    assert item.done
    assert item.title == "still here"
    (warning,) = roadmap.errors
    assert warning.line == 1
    assert "Done section (line 5)" in warning.message
    assert "T1-1" in roadmap.unreadable_ids


def test_done_ranges_and_repeats_are_reported() -> None:
    roadmap = parse_roadmap("## Done\n- T1-3..T1-7\n- T1-3\n")
    assert [(w.line, w.severity) for w in roadmap.warnings] == [
        (2, Severity.ERROR), (3, Severity.WARNING)]
    assert "ranges" in roadmap.warnings[0].message
    assert roadmap.done_ids == {"T1-3", "T1-7"}


# -- problems ------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "fragment", "named"), [
    ("**T1-7 · **", "has no title", "T1-7"),
    ("T1-7 ·", "has no title", "T1-7"),
    ("**T-1 · bad tier**", "bad id 'T-1'", None),
    ("**Tx-3 · bad tier**", "bad id 'Tx-3'", None),
    ("- **T1-8 missing separator**", "no ' · '", "T1-8"),
    ("T1-9 - dash instead of dot", "no ' · '", "T1-9"),
    ("T1-9: colon instead of dot", "no ' · '", "T1-9"),
    ("### T1-6 · written as a heading", "looks like an item", "T1-6"),
])
def test_malformed_item_line_is_an_error_with_its_line_number(
        line: str, fragment: str, named: str | None) -> None:
    text = f"# r\n\n**T1-1 · fine**\n_ok_\n\n{line}\n_sub_\n\n**T1-2 · after**\n_ok_\n"
    roadmap = parse_roadmap(text)
    assert [i.id for i in roadmap.open_items] == ["T1-1", "T1-2"]
    assert roadmap.open_items[0].body == ""  # the broken line's lines are not T1-1's body
    (warning,) = roadmap.warnings
    assert (warning.line, warning.severity, warning.item_id) == (6, Severity.ERROR, named)
    assert fragment in warning.message
    assert roadmap.unreadable_ids == ({named} if named else set())


def test_duplicate_id_is_an_error_and_the_first_item_wins() -> None:
    text = "**T1-1 · first**\n_a_\n\n**T1-1 · second**\n_b_\n"
    roadmap = parse_roadmap(text)
    assert [(i.id, i.title) for i in roadmap.open_items] == [("T1-1", "first")]
    (warning,) = roadmap.warnings
    assert warning.line == 4
    assert "duplicate id T1-1 (first at line 1)" in warning.message
    assert warning.severity is Severity.ERROR


def test_broken_separator_puts_the_id_in_unreadable_ids() -> None:
    roadmap = parse_roadmap("**T1-1 · fine**\n_a_\n\n**T1-2 broken**\n_b_\n")
    assert roadmap.unreadable_ids == {"T1-2"}
    assert roadmap.get("T1-2") is None


def test_missing_italic_subtitle_is_a_mild_warning() -> None:
    roadmap = parse_roadmap("**T1-1 · fine**\nplain text\n")
    (warning,) = roadmap.warnings
    assert warning.severity == "warning"
    assert "no italic subtitle" in warning.message
    assert roadmap.errors == ()
    assert roadmap.open_items[0].body == "plain text"
    assert str(warning).startswith("line 1: warning: T1-1 has no italic subtitle")


def test_unreadable_file_raises_roadmap_error_saying_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(RoadmapError, match=r"create roadmap\.md"):
        load_roadmap(tmp_path / "roadmap.md")
    with pytest.raises(RoadmapError, match="is a folder"):
        load_roadmap(tmp_path)
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"**T1-1 \xb7 latin-1 dot**\n")
    with pytest.raises(RoadmapError, match="not UTF-8") as caught:
        load_roadmap(bad)
    assert caught.value.hint == "re-save the file as UTF-8"


def test_lint_exits_non_zero_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "roadmap.md"
    path.write_text("**T1-1 · ok**\n_a_\n\n**T-2 · bad**\n_b_\n")
    result = CliRunner().invoke(cli, ["roadmap", "lint", "--file", str(path)])
    assert result.exit_code == 1
    assert f"{path}:4: error: bad id 'T-2'" in result.output


def test_lint_reports_every_bold_t_digit_line_that_fails_the_id_grammar(tmp_path: Path) -> None:
    path = tmp_path / "roadmap.md"
    path.write_text("## Tier 1\n\n**T1-3;rm -rf x · evil**\n_a_\n\n**T1-$(touch y) · evil**\n_b_\n"
                    "\n**T1-4 · fine**\n_c_\n")

    result = CliRunner().invoke(cli, ["roadmap", "lint", "--file", str(path), "--json"])

    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [(p["line"], p["severity"], p["item"]) for p in report["problems"]] == [
        (3, "error", "T1-3"), (6, "error", None)]
    assert "bad id 'T1-3;rm'" in report["problems"][0]["message"]
    assert "bad id 'T1-$(touch'" in report["problems"][1]["message"]
    assert report["open_items"] == 1  # neither is an item
    assert not (tmp_path / "y").exists()


# -- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "files"), [
    ("see https://example.invalid/a.py and `docs/x.md`, also oxi_core/engine/tick.py.",
     ("docs/x.md", "oxi_core/engine/tick.py")),
    ("`roadmap.md` and `oxi.toml` count; task.tier, `v3.notification`, roadmap.md do not",
     ("oxi.toml", "roadmap.md")),
    ("(.github/workflows/ci.yml) [link](docs/runbooks/a.md) ./scripts/x.sh",
     (".github/workflows/ci.yml", "docs/runbooks/a.md", "scripts/x.sh")),
    ("~/.codex/x.json /etc/passwd.txt ../escape/x.py tests/fixtures/codex/ 1.5/2.0",
     ()),
    ("`python tools/run.py --fast` and **src/app/__init__.py**",
     ("src/app/__init__.py", "tools/run.py")),
])
def test_files_named_in_text(text: str, files: tuple[str, ...]) -> None:
    assert extract_files(text) == files


def test_item_files_come_from_title_subtitle_and_body() -> None:
    roadmap = parse_roadmap("**T1-1 · split `a/b.py`**\n_touches c/d.md_\n\nand `e/f.toml`\n")
    assert roadmap.open_items[0].files == ("a/b.py", "c/d.md", "e/f.toml")


# -- the project's own roadmap -------------------------------------------------------------


def test_the_projects_own_roadmap_parses_without_warnings() -> None:
    roadmap = load_roadmap(ROOT / "roadmap.md")
    assert roadmap.warnings == ()
    # It started as the seed's open items; pruning removes them as they ship, so only check
    # that the seed's ids keep their tiers and that shipped ids stay reserved.
    assert roadmap.open_items
    assert all(SEED_OPEN[i.id][0] == i.tier for i in roadmap.open_items if i.id in SEED_OPEN)
    assert roadmap.done_ids >= SEED_DONE
    assert all(item.subtitle and "\n" not in item.subtitle for item in roadmap.open_items)


# -- rewriting -----------------------------------------------------------------------------


def test_remove_items_keeps_everything_else_byte_for_byte() -> None:
    text = CANONICAL.replace("\n", "\r\n").rstrip("\r\n")  # CRLF, no final newline
    out = remove_items(text, {"T0-1"})
    expected = text.replace(
        "**T0-1 · fix the installer**\r\n"
        "_`scripts/install.sh` fails on a fresh machine; see `oxi_core/cli.py`._\r\n\r\n"
        "More detail about the installer\r\nover two lines.\r\n\r\n", "")
    assert out == expected
    assert [i.id for i in parse_roadmap(out).open_items] == ["T1-B5", "T2-A3"]


@pytest.mark.parametrize(("text", "ids", "expected"), [
    # the last item, no final newline: the blank line before it goes, no newline is added
    ("# r\n\n**T1-1 · a**\n_x_\n\n**T1-2 · b**\n_y_", {"T1-2"}, "# r\n\n**T1-1 · a**\n_x_"),
    ("# r\n\n**T1-1 · a**\n_x_\n\n**T1-2 · b**\n_y_\n", {"T1-2"}, "# r\n\n**T1-1 · a**\n_x_\n"),
    # the first item under a heading, then a heading after the last one
    ("## A\n\n**T1-1 · a**\n_x_\n\n**T1-2 · b**\n_y_\n\n## B\n", {"T1-1"},
     "## A\n\n**T1-2 · b**\n_y_\n\n## B\n"),
    ("## A\n\n**T1-1 · a**\n_x_\n\n**T1-2 · b**\n_y_\n\n## B\n", {"T1-1", "T1-2"},
     "## A\n\n## B\n"),
    # mixed and lone-CR endings, trailing spaces, two blank lines between items
    ("**T1-1 · a**\r_x_  \r\n\n\n**T1-2 · b**\n_y_\r\n", {"T1-1"}, "**T1-2 · b**\n_y_\r\n"),
    # duplicates and a broken line naming the id go too; the Done list stays
    ("**T1-1 · a**\n_x_\n\n**T1-1 · again**\n\n**T1-1 broken**\n\n## Done\n- T1-1\n",
     {"T1-1"}, "## Done\n- T1-1\n"),
    # the flattened form: one-line items and a described item
    ("Tier 2¶\nT2-12 · x PR #1 — queued\nT2-13 · y\ndesc\nT2-14 · z PR #2", {"T2-13"},
     "Tier 2¶\nT2-12 · x PR #1 — queued\nT2-14 · z PR #2"),
    ("Tier 2¶\nT2-12 · x PR #1 — queued\nT2-13 · y\ndesc\nT2-14 · z PR #2", {"T2-14"},
     "Tier 2¶\nT2-12 · x PR #1 — queued\nT2-13 · y\ndesc"),
    # nothing to remove: the very same text
    ("**T1-1 · a**\r\n_x_", {"T9-9"}, "**T1-1 · a**\r\n_x_"),
    ("", {"T1-1"}, ""),
])
def test_remove_items(text: str, ids: set[str], expected: str) -> None:
    assert remove_items(text, ids) == expected


def test_removing_from_the_seed_never_resurrects_and_keeps_the_rest() -> None:
    text = SEED.read_text(encoding="utf-8")
    assert remove_items(text, []) == text
    ids = ["T0-104", "T2-12", "T2-16", "T2-42", "T1-B11"]
    out = remove_items(text, ids)
    after = parse_roadmap(out)
    assert {i.id for i in after.open_items} == set(SEED_OPEN) - set(ids)
    assert after.done_ids == SEED_DONE
    assert after.warnings == ()
    assert "Tier 0 — operational pain from 2026-04-25 dogfood¶\nT0-105 · heartbeat" in out
    assert out.endswith(text[-200:])


# -- properties ----------------------------------------------------------------------------

FRAGMENTS = [
    "# Roadmap", "## Tier 1", "### Tier 2 — later", "## Done", "Tier 0 — x¶", "", "", "  ",
    "**T1-1 · one**", "- **T1-1 · one again**", "**T1-2 · two** — status", "T1-3 · three PR #4",
    "T1-B4 · four — queued", "**T2-A1 · five**", "_a subtitle_", "*another one*",
    "body naming `a/b.py`", "**T1-5 broken**", "**T-1 · bad**", "T1-2 - lookalike",
    "- T1-1, T1-6", "- T1-3..T1-7", "```", "~~~", "<!-- note", "-->", "# fenced?",
    "**T1-2**", "### T1-7 · heading", "    **T1-8 · indented**", "\ufeff", "T1-1 ·",
]
ENDINGS = ["\n", "\r\n", "\r"]
ALL_IDS = ["T1-1", "T1-2", "T1-3", "T1-B4", "T2-A1", "T1-5", "T1-6", "T1-7", "T1-8", "T9-9"]


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(ENDINGS)),
                          max_size=30))
    text = "".join(line + ending for line, ending in lines)
    return text.rstrip("\r\n") if draw(st.booleans()) else text


def _same(roadmap: Roadmap, removed: set[str]) -> list[tuple[object, ...]]:
    return [(i.id, i.tier, i.title, i.subtitle, i.body, i.section, i.done, i.files)
            for i in roadmap.items if i.id not in removed]


@settings(max_examples=300, deadline=None)
@given(documents(), st.sets(st.sampled_from(ALL_IDS)))
def test_remove_items_properties(text: str, ids: set[str]) -> None:
    assert remove_items(text, ()) == text
    assert parse_roadmap(text) == parse_roadmap(text)
    out = remove_items(text, ids)
    after = parse_roadmap(out)
    assert not {i.id for i in after.open_items} & ids  # removed ids never come back
    assert _same(after, ids) == _same(parse_roadmap(text), ids)  # the rest is untouched
    assert remove_items(out, ids) == out  # idempotent
    kept = iter(text.splitlines(keepends=True))  # kept lines are the input's, in order
    assert all(any(line.rstrip("\r\n") == old.rstrip("\r\n") for old in kept)
               for line in out.splitlines(keepends=True))
    assert text.endswith(("\n", "\r")) == out.endswith(("\n", "\r")) or not out


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_parses_without_crashing(text: str) -> None:
    roadmap = parse_roadmap(text)
    mentioned = {i.id for i in roadmap.items} | roadmap.unreadable_ids
    assert not {i.id for i in parse_roadmap(remove_items(text, mentioned)).open_items}


# -- prune ---------------------------------------------------------------------------------

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

**T1-4 · four**
_e_

**T1-5 · five**
_f_

**T1-B1 · letters**
_g_
"""


def _commit(root: Path, message: str, files: dict[str, str], *extra: str) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message, *extra)


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                            text=True, env={**os.environ, **IDENTITY})
    return result.stdout.strip()


def test_prune_keeps_only_items_named_by_substantive_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": ROADMAP})
    root = repo.root
    _commit(root, "Implement the first thing\n\nCloses T1-1.", {"one.py": "1\n"})
    _commit(root, "roadmap: reword T1-2", {"roadmap.md": ROADMAP + "\n"})  # roadmap only
    _commit(root, "T1-B1 placeholder", {}, "--allow-empty")  # touches nothing
    _git(root, "checkout", "-q", "-b", "side")
    _commit(root, "side work", {"side.py": "s\n"})
    _git(root, "checkout", "-q", "-b", "elsewhere", "main")
    _commit(root, "T1-5: never merged", {"five.py": "5\n"})
    _git(root, "checkout", "-q", "main")
    _commit(root, "main work", {"main.py": "m\n"})
    _git(root, "merge", "-q", "--no-ff", "-m", "Merge T1-3 side branch", "side")  # a merge
    _commit(root, "T1-4: add four", {"four.py": "4\n"})
    _git(root, "revert", "--no-edit", "HEAD")  # reverted: neither counts
    text = (root / "roadmap.md").read_text()

    (match,) = find_prunable(root, text)
    assert match.item_id == "T1-1"
    assert match.subject == "Implement the first thing"
    assert match.commit == _git(root, "log", "-1", "--format=%H", "--grep=Closes T1-1")
    assert prunable_ids(root, text) == ["T1-1"]  # not T1-10, T1-2, T1-3, T1-4, T1-5, T1-B1
    assert prunable_ids(root, text, "elsewhere") == ["T1-1", "T1-5"]  # branched after T1-1
    out = remove_items(text, prunable_ids(root, text))
    assert [i.id for i in parse_roadmap(out).open_items] == [
        "T1-2", "T1-10", "T1-3", "T1-4", "T1-5", "T1-B1"]


def test_prune_with_a_roadmap_in_a_subfolder_and_a_remote_ref(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"docs/roadmap.md": ROADMAP})
    _commit(repo.root, "T1-2: only the roadmap", {"docs/roadmap.md": ROADMAP + "\n"})
    _commit(repo.root, "T1-3: the real thing", {"three.py": "3\n", "roadmap.md": "x\n"})
    _git(repo.root, "push", "-q", "origin", "main")
    _git(repo.root, "fetch", "-q", "origin")
    assert prunable_ids(repo.root, ROADMAP, "origin/main",
                        roadmap_path="./docs/roadmap.md") == ["T1-3"]


def test_prune_on_a_missing_ref_is_a_git_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": ROADMAP})
    with pytest.raises(GitError, match="no-such-branch"):
        prunable_ids(repo.root, ROADMAP, "no-such-branch")


def test_oxi_roadmap_prune_rewrites_the_file(tmp_path: Path) -> None:
    pytest.importorskip("oxi_adapter_self")  # the workspace venv has it; a bare checkout not
    repo = make_repo(tmp_path, {"roadmap.md": ROADMAP})
    _commit(repo.root, "T1-1: implement one", {"one.py": "1\n"})
    text = (repo.root / "roadmap.md").read_text()
    (repo.root / "oxi.toml").write_text(
        '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n')
    runner = CliRunner()
    config = ["--config", str(repo.root / "oxi.toml"), "roadmap", "prune", "--ref", "main"]
    dry = runner.invoke(cli, [*config, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove T1-1" in dry.output
    assert (repo.root / "roadmap.md").read_text() == text
    real = runner.invoke(cli, config)
    assert real.exit_code == 0, real.output
    assert (repo.root / "roadmap.md").read_text() == remove_items(text, ["T1-1"])
