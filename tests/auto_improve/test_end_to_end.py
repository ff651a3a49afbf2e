"""Done means (issue 13): `oxi auto-improve scan` end to end, offline: the newsletter source
reading Latent Space's fixtures from a site on 127.0.0.1, the X source running a stand-in X tool
that prints the fixture shape, a source that fails alone, the real embedding model, and a
scripted judge behind the routed inference path. It writes the digest and stages proposals;
`accept` turns one into a roadmap item that the next tick dispatches and merges."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner
from oxi_newsletter.testing import Site

from oxi_core.cli import cli
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.roadmap import load_roadmap
from oxi_core.tasks import TaskStatus
from oxi_core.testing import repos
from oxi_core.testing.repos import exec_agent_toml, make_repo
from tests.auto_improve.support import rubric
from tests.conftest import CHECK_ANSWERS, SCRIPTED_AGENT, load, tick

ROOT = Path(__file__).resolve().parents[2]
NEWSLETTER_FIXTURES = ROOT / "plugins/oxi-newsletter/tests/fixtures"
X_TOOL = ROOT / "plugins/oxi-x/tests/x_tool.py"
X_FIXTURES = ROOT / "plugins/oxi-x/tests/fixtures"
ASYNC_AGENTS = ("Latent Space: The Age of Async Agents — Cognition's Walden Yan + "
                "OpenInspect's Cole Murray")
ROADMAP = """# roadmap

## Tier 1

**T1-1 · Heartbeat reaper for zombie dispatches**
_Return tasks whose worker died to planned, and never touch a live one._
"""


def serve_latent_space(site: Site) -> None:
    archive = "/api/v1/archive?sort=new&search=&offset={}&limit=2"
    site.put("/feed", (NEWSLETTER_FIXTURES / "latent_space_feed.xml").read_bytes(),
             content_type="application/rss+xml; charset=utf-8")
    for offset, name in ((0, "latent_space_archive_offset0.json"),
                         (2, "latent_space_archive_offset2.json")):
        site.put(archive.format(offset), (NEWSLETTER_FIXTURES / name).read_bytes(),
                 content_type="application/json; charset=utf-8")
    site.put(archive.format(4), "[]", content_type="application/json; charset=utf-8")
    site.put("/p/harness-eng",
             (NEWSLETTER_FIXTURES / "latent_space_post_harness_eng.html").read_bytes())


def oxi(repo: repos.TestRepo, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--config", str(repo.config), *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_scan_stages_proposals_and_an_accepted_one_is_dispatched_by_the_next_tick(
        tmp_path: Path, test_registry: None, prompt_log: Path) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": ROADMAP})
    with Site() as site, Site() as broken:
        serve_latent_space(site)
        broken.put("/feed", "upstream down", status=502)
        tables = {
            "sources": {
                "latent_space": {"type": "newsletter", "kwargs": {
                    "publication": "latent_space", "base_url": site.base_url,
                    "archive_limit": 2}},
                "bens_bites": {"type": "newsletter", "kwargs": {
                    "publication": "bens_bites", "base_url": broken.base_url}},
                "x": {"type": "x", "kwargs": {
                    "argv": [sys.executable, str(X_TOOL), "--mode", "print", "--record",
                             str(tmp_path / "x-runs.jsonl"), "--fixture",
                             str(X_FIXTURES / "twscrape_search.jsonl")],
                    "accounts": ["piloly", "teslascope"]}},
            },
            "inference": {"gateway": {"type": "scripted_judge", "kwargs": {"verdicts": {
                ASYNC_AGENTS: rubric(
                    5, 4, 1, title="Run agents asynchronously, reporting back by event",
                    subtitle="Let a dispatched agent keep working while the tick moves on.",
                    rationale="Async agent workflows match how oxi_core.engine.dispatch "
                              "runs workers; worth a design note.",
                    modules=["oxi_core.engine.dispatch"]),
            }}}},
            "auto_improve": {"lookback_days": 3650},
        }
        repo.write("oxi.toml", exec_agent_toml(SCRIPTED_AGENT, critic=CHECK_ANSWERS,
                                               agent_env={"PROMPT_LOG": str(prompt_log)})
                   + "\n" + tomli_w.dumps(tables))
        repo.commit_and_push("oxi.toml")
        scanned = json.loads(oxi(repo, "auto-improve", "scan", "--json").stdout)

    assert scanned["fetched"]["latent_space"] >= 2
    assert scanned["fetched"]["x"] >= 1
    assert [f["source"] for f in scanned["failures"]] == ["bens_bites"]
    assert "502" in scanned["failures"][0]["reason"]
    [staged] = scanned["emitted"]
    assert staged["id"] == "T1-A1"
    digest = Path(scanned["digest"])
    assert digest.name.startswith("auto-improve-digest-") and digest.parent == (
        repo.root / ".oxi")
    text = digest.read_text()
    for section in ("Top proposals", "Skipped (dedup)", "Skipped (fabricated)",
                    "Source failures", "Budget held"):
        assert f"## {section}" in text
    assert "T1-A1 · Run agents asynchronously, reporting back by event" in text
    # The real model ranked: its vectors are cached by content hash for the next scan.
    assert (repo.root / ".oxi" / "auto-improve-embeddings.db").stat().st_size > 0

    listed = json.loads(oxi(repo, "auto-improve", "proposals", "--json").stdout)
    assert [p["id"] for p in listed["proposals"]] == ["T1-A1"]
    oxi(repo, "auto-improve", "accept", "T1-A1")
    item = load_roadmap(repo.root / "roadmap.md").get("T1-A1")
    assert item is not None and item.tier == 1
    assert item.title == "Run agents asynchronously, reporting back by event"
    assert item.subtitle == "Let a dispatched agent keep working while the tick moves on."
    assert "**T1-A1 · Run agents asynchronously, reporting back by event**\n_Let a " in (
        repo.root / "roadmap.md").read_text()
    # As an operator would: roadmap.md alone (a commit naming the id and touching other files
    # would mark the item shipped, docs/roadmap-format.md).
    repo.commit_and_push("roadmap: accept T1-A1 from auto-improve")
    assert repo.git("show", "--name-only", "--format=", "HEAD") == "roadmap.md"

    engine = Engine(load(repo))
    for _ in range(6):
        tick(engine)
        task = engine.ledger.task("T1-A1")
        if task is not None and task.status is TaskStatus.MERGED:
            break
    task = engine.ledger.task("T1-A1")
    assert task is not None and task.status is TaskStatus.MERGED
    assert "Run agents asynchronously" in (prompt_log / "T1-A1.log").read_text()
    assert engine.ledger.events(types=[ev.EXTERNAL_PROPOSAL_ACCEPTED])[0].payload[
        "proposal_id"] == "T1-A1"
