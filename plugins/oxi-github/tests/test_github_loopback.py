"""The loopback GitHub itself: git over HTTP with token auth, and REST answers shaped as GitHub's
OpenAPI description says (the required fields of `shared/fixtures/github/`'s schemas, its error
bodies, its headers), so what the forge is tested against is GitHub's protocol."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from github_fixtures import GitHubRepo
from oxi_github.testing import LoopbackGitHub


def _fixtures() -> Path | None:
    """shared/fixtures/github beside the checkout (as CI lays it out), or $OXI_SHARED_DIR."""
    named = os.environ.get("OXI_SHARED_DIR")
    candidates = [Path(named)] if named else []
    candidates += [parent / "shared" for parent in Path(__file__).resolve().parents]
    for shared in candidates:
        if (shared / "fixtures" / "github" / "pulls_schema_summary.json").is_file():
            return shared / "fixtures" / "github"
    return None


FIXTURES = _fixtures()
needs_fixtures = pytest.mark.skipif(FIXTURES is None, reason="shared/fixtures/github is not "
                                    "beside this checkout (set OXI_SHARED_DIR)")


def fixture(name: str) -> Any:
    assert FIXTURES is not None
    return json.loads((FIXTURES / name).read_text())


def api(hub: LoopbackGitHub, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {hub.token}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{hub.api_url}{path}", headers=headers, **kwargs)


@pytest.fixture
def pull(github_repo: Callable[..., GitHubRepo]) -> tuple[LoopbackGitHub, int]:
    repo = github_repo()
    hub = repo.hub
    hub.push("oxi/T1-1-x", {"a.txt": "a\n"}, "T1-1: x")
    created = api(hub, "POST", f"/repos/{hub.full_name}/pulls",
                  json={"head": "oxi/T1-1-x", "base": "main", "title": "T1-1: x"})
    assert created.status_code == 201
    return hub, created.json()["number"]


def test_git_over_http_needs_the_token(hub: LoopbackGitHub, tmp_path: Path) -> None:
    hub.seed({"README.md": "hello\n"})
    anonymous = subprocess.run(["git", "clone", "-q", hub.git_url, str(tmp_path / "a")],
                               capture_output=True, text=True,
                               env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    assert anonymous.returncode != 0
    assert "could not read Username" in anonymous.stderr
    clone = hub.clone(tmp_path / "b")
    assert (clone / "README.md").read_text() == "hello\n"


def test_rest_needs_the_token_and_says_so_as_github_does(hub: LoopbackGitHub) -> None:
    missing = httpx.get(f"{hub.api_url}/repos/{hub.full_name}/pulls")
    wrong = httpx.get(f"{hub.api_url}/repos/{hub.full_name}/pulls",
                      headers={"Authorization": "Bearer nope"})
    assert (missing.status_code, missing.json()["message"]) == (401, "Requires authentication")
    assert (wrong.status_code, wrong.json()["message"]) == (401, "Bad credentials")


@needs_fixtures
@pytest.mark.parametrize(("schema", "path"), [
    ("pull-request (GET one PR, POST create, PATCH update)", "/pulls/{n}"),
    ("pull-request-simple (GET list items)", "/pulls"),
    ("diff-entry (GET files items)", "/pulls/{n}/files"),
])
def test_pull_request_bodies_have_every_required_field(
    pull: tuple[LoopbackGitHub, int], schema: str, path: str,
) -> None:
    hub, number = pull
    body = api(hub, "GET", f"/repos/{hub.full_name}{path.format(n=number)}").json()
    item = body[0] if isinstance(body, list) else body
    required = fixture("pulls_schema_summary.json")[schema]["required"]
    assert sorted(set(required) - set(item)) == []


@needs_fixtures
def test_check_runs_and_combined_status_have_the_documented_shape(
    pull: tuple[LoopbackGitHub, int],
) -> None:
    hub, number = pull
    sha = hub.pull(number).head_sha
    runs = api(hub, "GET", f"/repos/{hub.full_name}/commits/{sha}/check-runs").json()
    documented = fixture("checks_list_for_ref.json")["responses"]["200"]["content"][
        "application/json"]["schema_summary"]
    assert set(documented["required"]) <= set(runs)
    run_required = documented["properties"]["check_runs"]["items"]["required"]
    assert sorted(set(run_required) - set(runs["check_runs"][0])) == []
    status = api(hub, "GET", f"/repos/{hub.full_name}/commits/{sha}/status").json()
    example = fixture("repos_get_combined_status_for_ref.json")["responses"]["200"]["content"][
        "application/json"]["examples"]["default"]["value"]
    assert set(example) == set(status)
    assert status["state"] == "pending" and status["total_count"] == 0  # no statuses yet


@needs_fixtures
def test_errors_are_githubs_own_words(pull: tuple[LoopbackGitHub, int]) -> None:
    hub, number = pull
    examples = fixture("errors.json")["examples"]
    again = api(hub, "POST", f"/repos/{hub.full_name}/pulls",
                json={"head": "oxi/T1-1-x", "base": "main", "title": "again"})
    documented = examples["422_pull_request_already_exists"]
    assert again.status_code == 422
    assert again.json()["message"] == documented["body"]["message"]
    assert again.json()["errors"][0]["message"] == documented["message_template"].format(
        head_owner=hub.owner, head_branch="oxi/T1-1-x")

    stale = api(hub, "PUT", f"/repos/{hub.full_name}/pulls/{number}/merge",
                json={"merge_method": "squash", "sha": "0" * 40})
    assert (stale.status_code, stale.json()["message"]) == (
        409, examples["409_merge_head_modified"]["body"]["message"])

    hub.exhaust("core", reset_in_s=60)
    limited = api(hub, "GET", f"/repos/{hub.full_name}/pulls")
    assert limited.status_code == 403
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.json()["message"].startswith("API rate limit exceeded")
    documented_headers = set(examples["403_primary_rate_limit"]["headers"]) - {"Date"}
    assert documented_headers <= {k.lower() for k in limited.headers}


def test_a_304_does_not_count_and_pages_carry_link_headers(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    hub = github_repo().hub
    for n in range(3):
        hub.push(f"b{n}", {f"f{n}.txt": "x\n"}, f"change {n}")
        api(hub, "POST", f"/repos/{hub.full_name}/pulls",
            json={"head": f"b{n}", "base": "main", "title": f"change {n}"})
    first = api(hub, "GET", f"/repos/{hub.full_name}/pulls", params={"per_page": 2})
    assert first.headers["link"].count('rel="next"') == 1
    assert 'page=2>; rel="last"' in first.headers["link"]
    remaining = int(first.headers["x-ratelimit-remaining"])
    again = api(hub, "GET", f"/repos/{hub.full_name}/pulls", params={"per_page": 2},
                headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert int(again.headers["x-ratelimit-remaining"]) == remaining
    second = api(hub, "GET", f"/repos/{hub.full_name}/pulls", params={"per_page": 2, "page": 2})
    assert len(second.json()) == 1 and 'rel="prev"' in second.headers["link"]


def test_squash_merges_are_made_with_git_in_the_bare_repository(
    pull: tuple[LoopbackGitHub, int],
) -> None:
    hub, number = pull
    head = hub.pull(number).head_sha
    merged = api(hub, "PUT", f"/repos/{hub.full_name}/pulls/{number}/merge",
                 json={"merge_method": "squash", "sha": head})
    assert merged.json()["merged"] is True
    commit = hub.repo.commit(merged.json()["sha"])
    assert commit.message.startswith(f"T1-1: x (#{number})")
    assert len(commit.parents) == 1  # a squash: one parent, the old main
    assert hub.repo.out("show", "main:a.txt") == "a"
    assert not (hub.git_root / "octo-org" / "demo.git" / "index").exists()  # no worktree
