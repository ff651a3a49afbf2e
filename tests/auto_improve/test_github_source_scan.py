"""`oxi auto-improve scan` end to end with the `github` source (oxi-github) reading the loopback
GitHub: a pinned organisation's new release and a topic query's rising repository reach the
scan, the prefilters keep the quiet ones out, a second GitHub source whose token is refused
fails alone, and the release becomes a staged proposal (real embedding model, scripted judge)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner
from oxi_github.testing import LoopbackGitHub

from oxi_core.cli import cli
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.testing.repos import exec_agent_toml, make_repo
from tests.auto_improve.support import rubric

NOW = datetime.now(UTC)
ROADMAP = """# roadmap

## Tier 1

**T1-1 · Heartbeat reaper for zombie dispatches**
_Return tasks whose worker died to planned, and never touch a live one._
"""
RELEASE_TITLE = "acme/agent-runner v2.0.0: parallel workers"


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def rising_stars(count: int) -> list[datetime]:
    return [days_ago(28) + timedelta(hours=3 * i) for i in range(count)]


def populate(hub: LoopbackGitHub) -> None:
    hub.add_repository(
        "acme/agent-runner", description="Runs coding agents in parallel worktrees",
        stars=rising_stars(220), commits=[days_ago(30), days_ago(1)],
        releases=[{"tag_name": "v2.0.0", "name": "v2.0.0: parallel workers",
                   "published_at": days_ago(1),
                   "body": "Workers now run in parallel, one git worktree each, and report "
                           "back by event."}])
    hub.add_repository(  # a new release, but too few stars a day: dropped
        "acme/side-project", stars=rising_stars(40), commits=[days_ago(1)],
        releases=[{"tag_name": "v0.1.0", "published_at": days_ago(1)}])
    hub.add_repository(
        "someone/review-bot", description="An LLM critic for pull requests",
        topics=["code-review"], stars=rising_stars(180), commits=[days_ago(2)])
    hub.add_repository(  # found by the topic, but no commit for three weeks: dropped
        "someone/abandoned-bot", description="An older critic", topics=["code-review"],
        stars=rising_stars(400), commits=[days_ago(21)], pushed_at=days_ago(2))


@pytest.mark.slow
def test_github_candidates_reach_the_scan_and_become_a_staged_proposal(
        tmp_path: Path, test_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": ROADMAP})
    with LoopbackGitHub(tmp_path / "hub") as hub:
        populate(hub)
        monkeypatch.setenv("OXI_TEST_GITHUB_TOKEN", hub.token)
        # A token of the right shape that GitHub refuses (built here: no key shape in git).
        monkeypatch.setenv("OXI_TEST_REVOKED_TOKEN", "ghp_" + "revoked".ljust(36, "0"))
        tables = {
            "sources": {
                "github": {"type": "github", "kwargs": {
                    "api_url": hub.api_url, "token": {"env": "OXI_TEST_GITHUB_TOKEN"},
                    "topics": ["code-review"], "backoff_s": 0.01}},
                "github_revoked": {"type": "github", "kwargs": {
                    "api_url": hub.api_url, "token": {"env": "OXI_TEST_REVOKED_TOKEN"},
                    "orgs": ["acme"], "backoff_s": 0.01}},
            },
            "inference": {"gateway": {"type": "scripted_judge", "kwargs": {"verdicts": {
                RELEASE_TITLE: rubric(
                    5, 4, 1, title="Run workers in parallel worktrees",
                    subtitle="One worktree per worker, results reported back by event.",
                    rationale="acme/agent-runner shows parallel workers in their own "
                              "worktrees; oxi_core.engine.dispatch runs one worker per task.",
                    modules=["oxi_core.engine.dispatch"]),
            }}}},
            "auto_improve": {"accounts": {"github_orgs": ["acme"]}},
        }
        repo.write("oxi.toml", exec_agent_toml(["true"]) + "\n" + tomli_w.dumps(tables))
        repo.commit_and_push("oxi.toml")
        result = CliRunner().invoke(cli, ["--config", str(repo.config), "auto-improve", "scan",
                                          "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        scanned = json.loads(result.stdout)
        searched = [r for r in hub.requests if "/search/repositories" in r.path]
        web_url = hub.web_url

    assert scanned["fetched"] == {"github": 2}
    [failure] = scanned["failures"]
    assert failure["source"] == "github_revoked" and "401 Bad credentials" in failure["reason"]
    assert searched and all(r.resource == "search" for r in searched)
    [staged] = scanned["emitted"]
    assert staged["id"] == "T1-A1" and staged["title"] == "Run workers in parallel worktrees"
    with Ledger(repo.root / ".oxi" / "oxi.db") as ledger:
        stored = {row[0]: json.loads(row[1]) for row in ledger.query(
            "SELECT key, candidate FROM auto_improve_candidates")}
        [failed] = ledger.events(types=[ev.AUTO_IMPROVE_SOURCE_FAILED])
    release_url = f"{web_url}/acme/agent-runner/releases/tag/v2.0.0"
    assert set(stored) == {f"github:{release_url}", f"github:{web_url}/someone/review-bot"}
    assert stored[f"github:{release_url}"]["signal_kind"] == "github_release"
    assert failed.payload["details"] == {"status": 401}
    digest = Path(scanned["digest"]).read_text()
    assert "T1-A1 · Run workers in parallel worktrees" in digest
    assert "github_revoked" in digest
