"""`oxi route suggest`: per task class agreement, cost delta and merge rate from the paired
shadow runs; the routing.yaml change with its evidence; --apply writes it, comments intact."""

from __future__ import annotations

import json
from pathlib import Path

from oxi_core.agentic.shadow import record_pair
from oxi_core.agentic.types import DispatchResult
from oxi_core.inference.routing import load_routing, route_for
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import Classification
from oxi_core.tasks import Task, TaskStatus
from tests.inference.support import TWO_AGENTS_TOML, git_folder, oxi

TOML = TWO_AGENTS_TOML + 'shadow = "codex"\n'
OK = Classification.SUCCESS


def plant(folder: Path, tasks: list[tuple[str, int, str, str, int, int]]) -> None:
    """(id, tier, title, status, pairs agreeing, pairs disagreeing) per task."""
    git_folder(folder, TOML)
    with Ledger(folder / ".oxi" / "oxi.db") as ledger:
        for task_id, tier, title, status, agree, disagree in tasks:
            ledger.insert_task(Task(id=task_id, tier=tier, title=title,
                                    status=TaskStatus(status)),
                               event_type=ev.TASK_INGESTED, payload={})
            primary = DispatchResult(OK, cost_usd=0.30)
            for n in range(agree + disagree):
                shadow = DispatchResult(OK if n < agree else Classification.FAILED,
                                        cost_usd=0.10)
                record_pair(ledger, task_id, "claude", "codex", primary, ["a.py"], shadow,
                            ["a.py"])


TASKS = [
    # tier 3 "lint" tasks: codex agrees 11 of 12 times, for $0.20 less -> promoted
    ("T3-1", 3, "lint the docs", "merged", 4, 0),
    ("T3-2", 3, "lint the CLI", "merged", 4, 1),
    ("T3-3", 3, "lint configs", "failed", 3, 0),
    # tier 1: codex disagrees too often
    ("T1-1", 1, "rewrite the engine", "merged", 6, 6),
]


def test_suggest_shows_the_evidence_per_class_and_the_rule(tmp_path: Path) -> None:
    plant(tmp_path, TASKS)
    done = oxi(tmp_path, "route", "suggest", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pairs"] == 24
    by_class = {(c["tier"], c["word"]): c for c in report["classes"]}
    lint = by_class[(3, "lint")]
    assert (lint["pairs"], lint["agreement"]) == (12, round(11 / 12, 4))
    assert lint["cost_delta_usd"] == -0.2 and lint["merge_rate"] == round(2 / 3, 4)
    assert by_class[(1, None)]["agreement"] == 0.5
    # The whole of tier 3 qualifies too (the same 12 pairs): the tier rule covers its words.
    assert [(c["tier"], c["word"]) for c in report["suggested"]] == [(3, None)]
    [rule] = report["rules"]
    assert rule["match"] == {"tier": 3} and rule["adapter"] == "codex"
    assert rule["fallback"] == ["default"]
    assert "12 pairs, agreement 92%, cost delta $-0.2000 per run, merge rate 67%" in rule["why"]

    text = oxi(tmp_path, "route", "suggest").stdout
    assert "24 shadow pairs in" in text
    assert "    - name: tier-3-all-to-codex\n      match: {tier: 3}\n" in text
    assert text.rstrip().endswith("run with --apply to write it")
    assert not (tmp_path / "routing.yaml").exists()


def test_apply_writes_the_rule_keeping_every_comment(tmp_path: Path) -> None:
    plant(tmp_path, TASKS)
    mine = ("# my routing: reviewed by ops\nversion: 1\nroles:\n  worker:\n"
            "    # docs first\n    - name: docs\n      match: {title_words: [readme]}  # keep\n"
            "      adapter: codex\n    - name: default\n      adapter: default\n"
            "  summary:\n    - {adapter: gateway, model: claude-haiku-4-5}  # cheap\n")
    (tmp_path / "routing.yaml").write_text(mine)
    done = oxi(tmp_path, "route", "suggest", "--min-pairs", "5", "--apply")
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "routing.yaml").read_text()
    for comment in ("# my routing: reviewed by ops", "# docs first", "# keep", "# cheap"):
        assert comment in written
    routing = load_routing(tmp_path)
    names = [rule.name for rule in routing.rules("worker")]
    assert names == ["docs", "tier-3-all-to-codex", "default"]
    assert route_for("worker", {"tier": 3, "title": "lint again"}, routing=routing
                     ).adapter_name == "codex"
    assert route_for("worker", {"tier": 1, "title": "x"}, routing=routing).rule == "default"
    # Applied once: the class routes to codex now, so nothing more is suggested.
    again = oxi(tmp_path, "route", "suggest", "--min-pairs", "5", "--apply")
    assert "no class qualifies" in again.stdout
    assert (tmp_path / "routing.yaml").read_text() == written


def test_apply_without_a_routing_file_starts_from_the_commented_defaults(tmp_path: Path) -> None:
    plant(tmp_path, TASKS)
    oxi(tmp_path, "route", "suggest", "--apply")
    written = (tmp_path / "routing.yaml").read_text()
    assert written.startswith("# routing.yaml: which adapter and model play each role")
    assert "# T2-40: one trivial task class goes to the cheaper agent first." in written
    names = [rule.name for rule in load_routing(tmp_path).rules("worker")]
    assert names == ["doc-tier-2-to-codex", "tier-3-all-to-codex", "default"]


def test_no_pairs_no_change(tmp_path: Path) -> None:
    plant(tmp_path, [])
    assert "no shadow pairs yet" in oxi(tmp_path, "route", "suggest").stdout
