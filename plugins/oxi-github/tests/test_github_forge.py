"""The github forge against the loopback GitHub, one behaviour of issue 11 at a time: pushing
with the token through git's credential mechanism, opening (and adopting) pull requests, listing
oxi's with their files, arming auto-merge (refusals, a merge queue, a clean pull request),
guarded direct merges, what it observes, comments and reviews, and every failure mode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from github_fixtures import TOKEN_ENV, GitHubRepo
from oxi_github.client import GitHubAuthError, graphql_url_for
from oxi_github.forge import GitHubForge

from oxi_core.config import load_config
from oxi_core.errors import AutoMergeUnavailable, ForgeSetupError, ForgeUnavailable
from oxi_core.log import REDACTED, redact_text
from oxi_core.models import ChecksState, PullRequestState

BRANCH = "oxi/T1-1-say-hello"


def forge_of(repo: GitHubRepo) -> GitHubForge:
    forge: GitHubForge = load_config(repo.config).forge
    return forge


def push(repo: GitHubRepo, forge: GitHubForge, branch: str, files: Mapping[str, str],
         message: str = "T1-1: say hello", *, base: str = "origin/main") -> str:
    """Commit ``files`` on ``branch`` (from ``base``) in the clone and push it as the worker
    does: git's own push, credentials from the forge's environment."""
    def git(*args: str, env: Mapping[str, str] | None = None) -> str:
        return subprocess.run(["git", *args], cwd=repo.root, check=True, capture_output=True,
                              text=True, env={**os.environ, **(env or {})}).stdout.strip()

    git("fetch", "-q", "origin", env=forge.git_env())
    git("checkout", "-q", "-B", branch, base)
    for name, text in files.items():
        path = repo.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git("add", "-A")
    git("-c", "user.name=oxi", "-c", "user.email=oxi@localhost", "commit", "-qm", message)
    git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}", env=forge.git_env())
    head = git("rev-parse", "HEAD")
    git("checkout", "-q", "main")
    return head


@pytest.fixture
def opened(github_repo: Callable[..., GitHubRepo]) -> tuple[GitHubRepo, GitHubForge, int]:
    repo = github_repo()
    forge = forge_of(repo)
    push(repo, forge, BRANCH, {"hello.txt": "hello\n"})
    pr = forge.open_pr(task_id="T1-1", branch=BRANCH, title="T1-1: say hello",
                       body="Roadmap item **T1-1 · say hello**")
    return repo, forge, pr.number


# -- 1. pushing with the token ---------------------------------------------------------------


def test_the_token_reaches_git_only_through_its_credential_helper(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo = github_repo()
    forge = forge_of(repo)
    env = forge.git_env()
    head = push(repo, forge, BRANCH, {"hello.txt": "hello\n"})

    assert repo.hub.repo.branch_sha(BRANCH) == head
    # Only the variable the helper reads holds the token; the helper script itself does not.
    holding = sorted(name for name, value in env.items() if repo.hub.token in value)
    assert holding == ["OXI_GITHUB_TOKEN"]
    assert env["GIT_CONFIG_KEY_0"] == f"credential.{repo.hub.web_url}.helper"
    assert env["GIT_CONFIG_VALUE_0"] == ""  # the helpers configured elsewhere are cleared
    # Never in the repository's configuration, never in the remote's URL.
    assert repo.hub.token not in (repo.root / ".git" / "config").read_text()
    url = subprocess.run(["git", "remote", "get-url", "origin"], cwd=repo.root, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert url == repo.hub.git_url
    # Every git request after the first challenge carried it as Basic credentials.
    git_requests = [r for r in repo.hub.requests if r.resource == "git"]
    assert {r.status for r in git_requests} >= {401, 200}


def test_a_wrong_token_is_refused_by_git(github_repo: Callable[..., GitHubRepo],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    repo = github_repo()
    monkeypatch.setenv(TOKEN_ENV, "ghp_wrong000000000000000000000000000000")
    forge = forge_of(repo)
    with pytest.raises(subprocess.CalledProcessError) as caught:
        push(repo, forge, BRANCH, {"hello.txt": "hello\n"})
    assert "Authentication failed" in caught.value.stderr
    assert "ghp_wrong" not in caught.value.stderr


def test_a_remote_over_ssh_gets_no_token(github_repo: Callable[..., GitHubRepo]) -> None:
    repo = github_repo()
    subprocess.run(["git", "remote", "set-url", "origin", "git@github.com:octo-org/demo.git"],
                   cwd=repo.root, check=True)
    assert forge_of(repo).git_env() == {}


# -- 2. opening pull requests ------------------------------------------------------------------


def test_open_pr_opens_a_labelled_pull_request_naming_its_task(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, _forge, number = opened
    record = repo.hub.pull(number)

    assert record.title == "T1-1: say hello"
    assert record.head == BRANCH and record.base == "main"
    assert record.labels == ["oxi"]
    assert record.body.endswith("<!-- oxi:task T1-1 -->")
    created = next(r for r in repo.hub.requests if r.method == "POST" and r.path.endswith(
        "/pulls"))
    assert json.loads(created.body) == {
        "head": BRANCH, "base": "main", "title": "T1-1: say hello",
        "body": "Roadmap item **T1-1 · say hello**\n\n<!-- oxi:task T1-1 -->",
        "maintainer_can_modify": False}
    assert created.status == 201


def test_an_existing_pull_request_for_the_branch_is_adopted(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    again = forge.open_pr(task_id="T1-1", branch=BRANCH, title="T1-1: say hello (again)",
                          body="second attempt")

    assert again.number == number
    assert [p.number for p in repo.hub.pulls()] == [number]
    assert repo.hub.pull(number).title == "T1-1: say hello (again)"
    refused = [r for r in repo.hub.requests if r.status == 422]
    assert len(refused) == 1


# -- 3. listing oxi's open pull requests with their files ----------------------------------------


def test_list_open_prs_returns_only_oxis_with_their_files(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    # A person's pull request, without oxi's label or marker.
    repo.hub.push("their-branch", {"theirs.txt": "x\n"}, "their change")
    with repo.hub.state.lock:
        repo.hub.state.create_pull(head="their-branch", base="main", title="theirs", body="")

    (pr,) = forge.list_open_prs()

    assert pr.number == number and pr.task_id == "T1-1"
    assert pr.files == ("hello.txt",)
    assert pr.state is PullRequestState.OPEN and pr.mergeable is True
    assert pr.checks is ChecksState.PASSING


def test_files_are_paginated_by_the_link_header_and_asked_once_per_head(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo = github_repo()
    forge = forge_of(repo)
    many = {f"many/{n:03}.txt": f"{n}\n" for n in range(250)}
    push(repo, forge, BRANCH, many)
    pr = forge.open_pr(task_id="T1-1", branch=BRANCH, title="T1-1: many", body="")
    pages = [r for r in repo.hub.requests if "/files" in r.path]

    assert len(pr.files) == 250 and pr.files[0] == "many/000.txt"
    assert len(pages) == 3  # 100 + 100 + 50, following rel="next"
    before = len(repo.hub.requests)
    forge.list_open_prs()
    assert not [r for r in repo.hub.requests[before:] if "/files" in r.path]


def test_more_files_than_github_lists_is_said(github_repo: Callable[..., GitHubRepo]) -> None:
    repo = github_repo()
    forge = forge_of(repo)
    push(repo, forge, BRANCH, {f"big/{n:04}.txt": f"{n}\n" for n in range(3005)})
    pr = forge.open_pr(task_id="T1-1", branch=BRANCH, title="T1-1: big", body="")
    report = forge.take_report()

    assert len(pr.files) == 3000  # GitHub's cap
    (notice,) = [n for n in report.notices if n.kind == "files_truncated"]
    assert notice.details == {"pr": pr.number}


# -- 4. arming auto-merge ------------------------------------------------------------------------


def test_auto_merge_is_armed_with_squash_on_the_head_and_is_idempotent(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    repo.hub.set_check(number, "pending")

    assert forge.arm_auto_merge(number) is True
    mutation = json.loads([r for r in repo.hub.requests if r.resource == "graphql"][-1].body)
    assert "enablePullRequestAutoMerge" in mutation["query"]
    assert mutation["variables"]["mergeMethod"] == "SQUASH"
    assert mutation["variables"]["expectedHeadOid"] == repo.hub.pull(number).head_sha
    assert repo.hub.pull(number).auto_merge is not None

    before = len([r for r in repo.hub.requests if r.resource == "graphql"])
    assert forge.arm_auto_merge(number) is False  # already armed: no mutation
    assert len([r for r in repo.hub.requests if r.resource == "graphql"]) == before
    (listed,) = forge.list_open_prs()  # read back from the REST list's auto_merge
    assert listed.auto_merge_armed and listed.checks is ChecksState.PENDING

    repo.hub.set_check(number, "success")  # GitHub merges it once the checks pass
    merged = forge.get_pr(number)
    assert merged.state is PullRequestState.MERGED
    assert merged.merged_sha == repo.hub.repo.branch_sha("main")
    assert repo.hub.repo.commit(merged.merged_sha).message.startswith(
        f"T1-1: say hello (#{number})")


def test_a_clean_pull_request_is_merged_at_once_guarded_by_its_head(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened  # its required check passed already
    assert forge.arm_auto_merge(number) is True

    merge = next(r for r in repo.hub.requests if r.method == "PUT")
    assert json.loads(merge.body) == {"merge_method": "squash",
                                      "sha": repo.hub.pull(number).head_sha,
                                      "commit_title": f"T1-1: say hello (#{number})"}
    assert forge.get_pr(number).state is PullRequestState.MERGED


@pytest.mark.parametrize(("setting", "reason"), [
    ("allow_auto_merge", "Auto merge is not allowed for this repository"),
    ("branch_protection", "Pull request Protected branch rules not configured for this branch"),
])
def test_a_repository_that_will_not_arm_auto_merge_says_why(
    opened: tuple[GitHubRepo, GitHubForge, int], setting: str, reason: str,
) -> None:
    repo, forge, number = opened
    setattr(repo.hub.settings, setting, False)
    repo.hub.set_check(number, "pending")

    with pytest.raises(AutoMergeUnavailable) as caught:
        forge.arm_auto_merge(number)
    assert reason in caught.value.reason
    assert "auto_merge_fallback" in (caught.value.hint or "")
    assert repo.hub.pull(number).state == "open"


def test_a_merge_queue_gets_the_pull_request_enqueued(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    repo.hub.settings.merge_queue = True
    repo.hub.set_check(number, "pending")

    assert forge.arm_auto_merge(number) is True
    mutations = [json.loads(r.body)["query"] for r in repo.hub.requests
                 if r.resource == "graphql"]
    assert any("enqueuePullRequest" in q for q in mutations)
    assert not any("enablePullRequestAutoMerge" in q for q in mutations)
    assert forge.list_open_prs()[0].auto_merge_armed
    assert forge.arm_auto_merge(number) is False
    repo.hub.set_check(number, "success")
    assert forge.get_pr(number).state is PullRequestState.MERGED


# -- the guarded direct merge ---------------------------------------------------------------------


def test_merge_now_waits_for_pending_and_failing_checks_then_merges_the_head(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    head = repo.hub.pull(number).head_sha
    repo.hub.set_check(number, "pending")
    assert forge.merge_now(number, head_sha=head).waiting == "checks pending: ci"
    repo.hub.set_check(number, "failure")
    assert forge.merge_now(number, head_sha=head).waiting == "checks failing: ci"
    repo.hub.set_check(number, "success")
    repo.hub.set_status(number, "deploy/preview", "pending")
    assert forge.merge_now(number, head_sha=head).waiting == "checks pending: deploy/preview"
    repo.hub.set_status(number, "deploy/preview", "success")

    attempt = forge.merge_now(number, head_sha=head)
    assert attempt.merged and attempt.pr is not None
    assert attempt.pr.state is PullRequestState.MERGED


def test_merge_now_never_merges_a_head_it_was_not_given(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    approved = repo.hub.pull(number).head_sha
    moved = repo.hub.push(BRANCH, {"late.txt": "late\n"}, "someone else's commit")

    attempt = forge.merge_now(number, head_sha=approved)
    assert not attempt.merged
    assert attempt.waiting == f"the head moved to {moved[:12]}"
    assert repo.hub.pull(number).state == "open"


# -- 5. observing ----------------------------------------------------------------------------------


def test_a_pull_request_a_person_closed_is_seen_closed(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    repo.hub.close_pull(number)

    assert forge.list_open_prs() == []
    pr = forge.get_pr(number)
    assert pr.state is PullRequestState.CLOSED
    assert pr.closed_reason == "closed on GitHub without merging"
    assert not pr.auto_merge_armed


def test_a_person_pushing_to_main_makes_the_pull_request_conflict(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, _number = opened
    repo.hub.push("main", {"hello.txt": "bonjour\n"}, "a person's commit on main")

    (pr,) = forge.list_open_prs()
    assert pr.state is PullRequestState.CONFLICTED and pr.mergeable is False
    assert pr.closed_reason == "merge conflict with main on GitHub"


@pytest.mark.parametrize(("outcome", "expected"), [
    ("pending", ChecksState.PENDING), ("failure", ChecksState.FAILING),
    ("success", ChecksState.PASSING),
])
def test_checks_are_read_for_every_open_pull_request_in_one_query(
    opened: tuple[GitHubRepo, GitHubForge, int], outcome: str, expected: ChecksState,
) -> None:
    repo, forge, number = opened
    repo.hub.set_check(number, outcome)
    before = len(repo.hub.requests)

    (pr,) = forge.list_open_prs()
    assert pr.checks is expected
    graphql = [r for r in repo.hub.requests[before:] if r.resource == "graphql"]
    assert len(graphql) == 1


def test_a_head_without_checks_says_none(github_repo: Callable[..., GitHubRepo]) -> None:
    repo = github_repo()
    repo.hub.settings.checks_on_push = None
    forge = forge_of(repo)
    push(repo, forge, BRANCH, {"hello.txt": "hello\n"})
    forge.open_pr(task_id="T1-1", branch=BRANCH, title="T1-1: say hello", body="")
    assert forge.list_open_prs()[0].checks is ChecksState.NONE


def test_a_head_a_person_moved_is_what_the_list_shows(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, _number = opened
    moved = repo.hub.push(BRANCH, {"late.txt": "late\n"}, "someone else's commit")
    (pr,) = forge.list_open_prs()
    assert pr.head_sha == moved
    assert pr.files == ("hello.txt", "late.txt")


def test_merged_prs_returns_what_merged_since_with_bodies(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    from datetime import UTC, datetime, timedelta

    repo, forge, number = opened
    repo.hub.merge_by_hand(number)
    (merged,) = forge.merged_prs(datetime.now(UTC) - timedelta(days=1))
    assert merged.number == number and merged.state is PullRequestState.MERGED
    assert "Roadmap item" in merged.body and merged.merged_at is not None
    assert forge.merged_prs(datetime.now(UTC) + timedelta(days=1)) == []


# -- 6. comments, reviews, closing, branches -------------------------------------------------------


def test_comment_review_and_close(opened: tuple[GitHubRepo, GitHubForge, int]) -> None:
    repo, forge, number = opened
    forge.comment(number, "a note")
    forge.review(number, "**oxi critic `tests`: REJECT**\n\n```text\n1 failed\n```")
    forge.close_pr(number, "Closed by oxi: the item was removed from the roadmap.")

    record = repo.hub.pull(number)
    assert [c["body"] for c in record.comments] == [
        "a note", "Closed by oxi: the item was removed from the roadmap."]
    (review,) = record.reviews
    assert review["state"] == "COMMENTED" and "1 failed" in review["body"]
    assert record.state == "closed" and not record.merged
    assert forge.get_pr(number).closed_reason == (
        "Closed by oxi: the item was removed from the roadmap.")


def test_a_merged_branch_is_deleted_and_a_missing_one_is_no_error(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    repo.hub.merge_by_hand(number)
    forge.delete_branch(BRANCH)
    assert repo.hub.repo.branch_sha(BRANCH) is None
    forge.delete_branch(BRANCH)  # 422 "Reference does not exist": already gone


# -- 7. the token and the failures ----------------------------------------------------------------


def test_a_refused_token_is_a_setup_error_naming_where_it_came_from(
    github_repo: Callable[..., GitHubRepo], monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = github_repo()
    monkeypatch.setenv(TOKEN_ENV, "ghp_revoked0000000000000000000000000000")
    forge = forge_of(repo)

    with pytest.raises(GitHubAuthError) as caught:
        forge.list_open_prs()
    assert isinstance(caught.value, ForgeSetupError)
    assert f"the environment variable {TOKEN_ENV} (oxi.toml [forges.github] kwargs.token)" in (
        str(caught.value))
    assert "401 Bad credentials" in str(caught.value)
    assert "ghp_revoked" not in str(caught.value)


@pytest.mark.parametrize(("access", "status"), [("none", 404), ("read", 403)])
def test_a_token_without_access_to_the_repository_says_so(
    opened: tuple[GitHubRepo, GitHubForge, int], access: str, status: int,
) -> None:
    repo, forge, number = opened
    repo.hub.access = access
    # Without access the private repository is not there (404); read-only, writes are 403.
    call = forge.list_open_prs if access == "none" else lambda: forge.comment(number, "hello")
    with pytest.raises(ForgeSetupError) as caught:
        call()
    assert f"lacks access to {repo.hub.full_name}" in str(caught.value)
    assert f"GitHub answered {status}" in str(caught.value)


def test_a_primary_rate_limit_stops_calls_until_reset_and_the_list_goes_on_as_known(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    forge.list_open_prs()
    forge.take_report()
    repo.hub.exhaust("core", reset_in_s=3600)

    # The first call meets the limit; every later one is not even sent.
    (pr,) = forge.list_open_prs()
    assert pr.number == number
    sent = len(repo.hub.requests)
    (again,) = forge_of(repo).list_open_prs()  # a new process: the limit is remembered
    assert again.number == number
    assert len(repo.hub.requests) == sent
    report = forge.take_report()
    kinds = [n.kind for n in report.notices]
    assert "rate_limited" in kinds and "stale" in kinds
    with pytest.raises(ForgeUnavailable) as caught:
        forge.comment(number, "not now")
    assert "primary rate limit on core" in str(caught.value)
    assert caught.value.retry_at is not None


def test_a_short_secondary_rate_limit_is_waited_out(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    repo.hub.fail("secondary_rate_limit", match="POST .*/comments", retry_after=1)

    forge.comment(number, "after the wait")
    assert [c["body"] for c in repo.hub.pull(number).comments] == ["after the wait"]
    refused = [r for r in repo.hub.requests if r.status == 403]
    assert len(refused) == 1
    (notice,) = [n for n in forge.take_report().notices if n.kind == "rate_limited"]
    assert notice.details["secondary"] is True


def test_a_long_secondary_rate_limit_is_not_waited_in_the_call(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    repo.hub.fail("secondary_rate_limit", match="POST .*/comments", retry_after=600)
    with pytest.raises(ForgeUnavailable) as caught:
        forge.comment(number, "later")
    assert "secondary rate limit" in str(caught.value)
    sent = len(repo.hub.requests)
    with pytest.raises(ForgeUnavailable):
        forge.comment(number, "still later")
    assert len(repo.hub.requests) == sent  # not sent while the wait lasts


@pytest.mark.parametrize("kind", ["status", "malformed_json"])
def test_5xx_and_malformed_json_are_retried(
    opened: tuple[GitHubRepo, GitHubForge, int], kind: str,
) -> None:
    repo, forge, number = opened
    repo.hub.fail(kind, match=r"GET [^?]*/pulls\?", times=2, status=502)

    (pr,) = forge.list_open_prs()
    assert pr.number == number
    retried = [n for n in forge.take_report().notices if n.kind == "retried"]
    assert len(retried) == 2


def test_5xx_that_does_not_end_is_unavailable_not_a_crash(
    opened: tuple[GitHubRepo, GitHubForge, int],
) -> None:
    repo, forge, number = opened
    repo.hub.fail("status", match="POST .*/comments", times=10, status=503)
    with pytest.raises(ForgeUnavailable) as caught:
        forge.comment(number, "x")
    assert "after 3 attempts" in str(caught.value)
    kinds = [n.kind for n in forge.take_report().notices]
    assert kinds == ["retried", "retried", "unavailable"]


def test_the_token_is_registered_as_a_secret(opened: tuple[GitHubRepo, GitHubForge, int]) -> None:
    repo, _forge, _number = opened
    assert redact_text(f"token {repo.hub.token}") == f"token {REDACTED}"


# -- configuration ---------------------------------------------------------------------------------


def test_github_enterprise_serves_graphql_beside_the_rest_api() -> None:
    assert graphql_url_for("https://ghe.example.com/api/v3") == (
        "https://ghe.example.com/api/graphql")
    assert graphql_url_for("https://api.github.com") == "https://api.github.com/graphql"


def test_the_repository_is_read_from_the_remote(github_repo: Callable[..., GitHubRepo]) -> None:
    repo = github_repo()
    assert forge_of(repo).full_name == repo.hub.full_name


def test_doctor_reports_a_refused_token_and_a_repository_without_auto_merge(
    github_repo: Callable[..., GitHubRepo], monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = github_repo()
    repo.hub.settings.allow_auto_merge = False
    findings = list(forge_of(repo).diagnose(deep=True))
    assert [f.severity for f in findings] == ["warning"]
    assert "does not allow auto-merge" in findings[0].problem

    monkeypatch.setenv(TOKEN_ENV, "ghp_revoked0000000000000000000000000000")
    (finding,) = forge_of(repo).diagnose(deep=True)
    assert finding.severity == "error" and TOKEN_ENV in finding.problem
    assert list(forge_of(repo).diagnose(deep=False)) == []  # offline: a token is found


def test_no_token_anywhere_is_a_setup_error_listing_where_oxi_looked(
    github_repo: Callable[..., GitHubRepo], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    repo = github_repo(forge={"token": None})
    for name in ("GH_TOKEN", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    only_git = tmp_path / "only-git"  # git on PATH, no gh CLI
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(only_git))
    (finding,) = forge_of(repo).diagnose(deep=False)
    assert finding.severity == "error"
    assert "GH_TOKEN and GITHUB_TOKEN are empty" in finding.problem
    assert "gh auth token" in finding.problem


def test_an_unknown_merge_queue_mode_is_a_config_error(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    from oxi_core.errors import ConfigError

    repo = github_repo(forge={"merge_queue": "sometimes"})
    with pytest.raises(ConfigError) as caught:
        load_config(repo.config)
    assert "merge_queue" in str(caught.value) and "auto, on, off" in str(caught.value)
