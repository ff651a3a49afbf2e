"""Read-only checks against the real GitHub API (seed T2-14), run nightly by
.github/workflows/nightly.yml when the OXI_LIVE_GITHUB_TOKEN secret is set. They confirm that
what the loopback GitHub answers is what GitHub answers: the repository, the pull request list
and its conditional requests, the GraphQL operations the forge sends (valid against GitHub's own
schema), and the rate-limit headers. Nothing is written on GitHub."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from oxi_github import queries
from oxi_github.forge import GitHubForge

from oxi_core.config import RuntimeContext
from oxi_core.policy import RepoPaths

TOKEN = os.environ.get("OXI_LIVE_GITHUB_TOKEN", "")
REPOSITORY = os.environ.get("OXI_LIVE_GITHUB_REPO", "")

pytestmark = [
    pytest.mark.live_github,
    pytest.mark.skipif(not TOKEN, reason="no OXI_LIVE_GITHUB_TOKEN: the live GitHub tests need "
                                         "a token (a repository secret in the nightly workflow)"),
    pytest.mark.skipif(not REPOSITORY, reason="no OXI_LIVE_GITHUB_REPO (owner/name) to read"),
]


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[GitHubForge]:
    live = GitHubForge(repository=REPOSITORY, token=TOKEN,
                       api_url=os.environ.get("OXI_LIVE_GITHUB_API", "https://api.github.com"))
    live.bind(RuntimeContext(RepoPaths.under(tmp_path), tmp_path))
    yield live
    live.client.close()


def test_the_repository_answers_and_a_second_ask_is_a_free_304(forge: GitHubForge) -> None:
    path = f"/repos/{REPOSITORY}"
    first = forge.client.get(path)
    second = forge.client.get(path)
    stats = forge.client.take_stats()

    assert first["full_name"].lower() == REPOSITORY.lower() and second == first
    assert stats.not_modified == 1 and stats.counted == 1
    assert stats.rate["core"]["limit"] > 0 and "remaining" in stats.rate["core"]


def test_the_open_pull_requests_list_and_its_graphql_status_query(forge: GitHubForge) -> None:
    prs = forge.list_open_prs()  # GitHub's real list, filtered to oxi's (often none)
    assert all(pr.number > 0 for pr in prs)
    owner, name = forge.owner_and_name
    data = forge.client.graphql(queries.OPEN_PULL_REQUESTS,
                                {"owner": owner, "name": name, "base": forge.base,
                                 "after": None})
    assert "pullRequests" in data["repository"]
    queue = forge.client.graphql(queries.MERGE_QUEUE,
                                 {"owner": owner, "name": name, "branch": forge.base})
    assert isinstance(queue["repository"]["autoMergeAllowed"], bool)


def test_merged_pull_requests_can_be_read(forge: GitHubForge) -> None:
    since = datetime.now(UTC) - timedelta(days=30)
    assert all(pr.merged_at is not None and pr.merged_at >= since
               for pr in forge.merged_prs(since))
