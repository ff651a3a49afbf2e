"""The requests the forge sends, pinned by pytest-recording cassettes: recorded once against the
loopback GitHub (`--record-mode=once`), replayed in every run since. A request whose method,
path, query or JSON body drifts from the recording fails the replay; the Authorization header
is filtered out of the cassettes, and the token never appears in them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from github_fixtures import GitHubRepo
from oxi_github.forge import GitHubForge

from oxi_core.config import load_config
from oxi_core.models import PullRequestState

CASSETTES = Path(__file__).parent / "cassettes" / "test_github_request_shapes"
BRANCH = "oxi/T1-1-say-hello"


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    # The loopback listens on a new port every run: requests match on everything but that
    # (the "json" matcher is registered in conftest.py).
    return {"filter_headers": ["authorization"], "match_on": ["method", "path", "query", "json"],
            "decode_compressed_response": True}


def _push(repo: GitHubRepo, forge: GitHubForge) -> None:
    run = {"cwd": repo.root, "check": True, "capture_output": True}
    env = {**os.environ, **forge.git_env()}
    subprocess.run(["git", "checkout", "-q", "-b", BRANCH], **run)  # type: ignore[call-overload]
    (repo.root / "hello.txt").write_text("hello\n")
    subprocess.run(["git", "add", "-A"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "-c", "user.name=oxi", "-c", "user.email=oxi@localhost", "commit",
                    "-qm", "T1-1: say hello"], **run)  # type: ignore[call-overload]
    subprocess.run(["git", "push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}"], env=env,
                   **run)  # type: ignore[call-overload]


@pytest.mark.vcr
def test_the_forges_requests_keep_their_recorded_shapes(
    github_repo: Callable[..., GitHubRepo], vcr: Any,
) -> None:
    repo = github_repo()
    repo.hub.settings.checks_on_push = "pending"
    forge: GitHubForge = load_config(repo.config).forge
    _push(repo, forge)

    pr = forge.open_pr(task_id="T1-1", branch=BRANCH, title="T1-1: say hello",
                       body="Roadmap item **T1-1 · say hello**")
    listed = forge.list_open_prs()
    forge.list_open_prs()  # conditional: If-None-Match, answered 304
    forge.review(pr.number, "**oxi critic `tests`: APPROVE**\n\nNo findings.")
    assert forge.arm_auto_merge(pr.number) is True
    if not vcr.play_count:  # recording: the checks pass on the loopback, which merges
        repo.hub.set_check(pr.number, "success")
    merged = forge.get_pr(pr.number)
    forge.delete_branch(BRANCH)

    assert [p.number for p in listed] == [pr.number]
    assert merged.state is PullRequestState.MERGED
    if vcr.play_count:  # a replay: every recorded request was asked for again, in its shape
        assert vcr.all_played
    requests = vcr.requests
    methods = [(r.method, r.path) for r in requests]
    assert methods[0] == ("POST", "/api/v3/repos/octo-org/demo/pulls")
    created = json.loads(requests[0].body)
    assert created == {"head": BRANCH, "base": "main", "title": "T1-1: say hello",
                       "body": "Roadmap item **T1-1 · say hello**\n\n<!-- oxi:task T1-1 -->",
                       "maintainer_can_modify": False}
    for request in requests:
        assert "authorization" not in {k.lower() for k in request.headers}
        assert request.headers.get("X-GitHub-Api-Version") == "2022-11-28"
        assert request.headers.get("Accept") == "application/vnd.github+json"
    lists = [r for r in requests if r.method == "GET" and r.path.endswith("/pulls")]
    assert "If-None-Match" not in lists[0].headers and "If-None-Match" in lists[-1].headers
    graphql = [json.loads(r.body) for r in requests if r.path == "/api/graphql"]
    enable = next(g for g in graphql if "enablePullRequestAutoMerge" in g["query"])
    assert enable["variables"]["mergeMethod"] == "SQUASH"
    assert enable["variables"]["expectedHeadOid"] == pr.head_sha
    review = next(r for r in requests if r.path.endswith("/reviews"))
    assert json.loads(review.body)["event"] == "COMMENT"
    assert ("DELETE", f"/api/v3/repos/octo-org/demo/git/refs/heads/{BRANCH}") in methods
    for cassette in CASSETTES.glob("*.yaml"):
        assert repo.hub.token not in cassette.read_text()
