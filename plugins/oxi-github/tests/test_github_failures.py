"""The engine with the github forge when GitHub, or a person on it, does not cooperate: rate
limits, 5xx answers, malformed JSON, a pull request closed by hand, a push to main that makes a
pull request conflict, a push to the branch under review, auto-merge not allowed, failing
checks. Each is a ledger event; none crashes a tick; nothing is merged that was not approved."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from github_fixtures import PASSING_CRITIC, GitHubRepo, roadmap

from oxi_core.builtins.notifiers import NOTIFY_EVENT_TYPES
from oxi_core.config import load_config
from oxi_core.engine.engine import Engine, TickReport
from oxi_core.engine.worktrees import branch_name
from oxi_core.ledger import events as ev
from oxi_core.models import Event
from oxi_core.tasks import TaskStatus


def engine_for(repo: GitHubRepo) -> Engine:
    return Engine(load_config(repo.config))


def tick(engine: Engine) -> TickReport:
    return asyncio.run(engine.run_once())


def events(engine: Engine, *types: str) -> list[Event]:
    return engine.ledger.events(types=list(types))


def status(engine: Engine, task_id: str = "T1-1") -> TaskStatus:
    task = engine.ledger.task(task_id)
    assert task is not None
    return task.status


def in_review(github_repo: Callable[..., GitHubRepo], **toml: object) -> tuple[GitHubRepo,
                                                                             Engine, int]:
    """One task approved, armed, its checks pending: an open pull request under review. The
    forge asks for checks every tick (these ticks follow each other within a second)."""
    repo = github_repo(critic=PASSING_CRITIC, forge={"checks_max_age_s": 0}, **toml)
    repo.hub.settings.checks_on_push = "pending"
    engine = engine_for(repo)
    tick(engine)
    assert status(engine) is TaskStatus.IN_REVIEW
    (pull,) = repo.hub.pulls()
    return repo, engine, pull.number


def test_a_spent_rate_limit_is_an_event_and_the_tick_goes_on(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo, engine, number = in_review(github_repo)
    repo.hub.set_check(number, "success")
    repo.hub.exhaust("core", reset_in_s=3)
    repo.hub.exhaust("graphql", reset_in_s=3)

    report = tick(engine)
    sent = len(repo.hub.requests)
    again = tick(engine_for(repo))  # a new process: the limit is remembered, nothing is sent

    assert report.failed_phases == [] and again.failed_phases == []
    assert len(repo.hub.requests) == sent
    limited = events(engine, ev.FORGE_RATE_LIMITED)
    assert limited and "no calls until" in limited[0].payload["message"]
    assert ev.FORGE_RATE_LIMITED in NOTIFY_EVENT_TYPES
    assert status(engine) is TaskStatus.IN_REVIEW  # nothing lost, nothing failed

    time.sleep(max(0.0, repo.hub.limits["core"].reset - time.time()) + 0.5)
    tick(engine_for(repo))  # the window has passed: GitHub is asked again
    assert status(engine) is TaskStatus.MERGED


def test_5xx_and_malformed_json_are_retried_events_and_never_crash_a_tick(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo, engine, number = in_review(github_repo)
    repo.hub.fail("status", match=r"GET [^?]*/pulls\?", times=1, status=502)
    repo.hub.fail("malformed_json", match=r"POST /api/graphql", times=1)

    report = tick(engine)

    assert report.failed_phases == []
    retried = events(engine, ev.FORGE_RETRIED)
    assert sorted(e.payload["status"] for e in retried) == [200, 502]
    assert "malformed JSON" in next(e for e in retried if e.payload["status"] == 200).payload[
        "message"]
    assert status(engine) is TaskStatus.IN_REVIEW
    repo.hub.set_check(number, "success")
    tick(engine)
    assert status(engine) is TaskStatus.MERGED


def test_a_forge_that_stays_down_is_an_event_and_the_last_list_is_used(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo, engine, _number = in_review(github_repo)
    repo.hub.fail("status", match=r"GET [^?]*/pulls\?", times=100, status=503)

    report = tick(engine)

    # The tick goes on with the pull requests it saw last, and says so.
    assert report.failed_phases == []
    assert events(engine, ev.FORGE_UNAVAILABLE)
    stale = [e for e in events(engine, ev.FORGE_NOTICE) if e.payload["kind"] == "stale"]
    assert stale and "as last seen" in stale[0].payload["message"]
    assert status(engine) is TaskStatus.IN_REVIEW
    assert not engine.paused()


def test_a_pull_request_closed_on_github_is_abandoned_never_reopened_or_rearmed(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo, engine, number = in_review(github_repo)
    repo.hub.close_pull(number)
    since = len(repo.hub.requests)

    for _ in range(3):
        tick(engine)

    assert status(engine) is TaskStatus.ABANDONED
    (closed,) = events(engine, ev.PR_CLOSED)
    assert closed.payload["reason"] == "closed on GitHub without merging"
    sent = repo.hub.requests[since:]
    assert not [r for r in sent if r.method == "PATCH"]  # never reopened
    assert not [r for r in sent if r.resource == "graphql" and b"enablePullRequestAutoMerge"
                in r.body]  # never armed again
    assert repo.hub.pull(number).state == "closed"


def test_a_push_to_main_that_conflicts_replans_the_task_and_it_merges_fresh(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo, engine, number = in_review(github_repo)
    repo.hub.push("main", {"notes/T1-1.txt": "a person got here first\n"}, "a person's commit")

    # The pull request conflicts: auto-merge (armed for the old head) is turned off, and T1-1
    # is redone at once on a fresh branch from the new main, force-pushed with a lease to the
    # same pull request, reviewed and armed again.
    tick(engine)
    (conflicted,) = events(engine, ev.PR_CONFLICTED)
    assert conflicted.payload["pr"] == number
    assert conflicted.payload["auto_merge_disarmed"] is True
    armed = events(engine, ev.AUTO_MERGE_ARMED)
    assert armed[-1].payload["head"] == repo.hub.pull(number).head_sha
    repo.hub.set_check(number, "success")
    tick(engine)

    assert status(engine) is TaskStatus.MERGED
    assert [p.number for p in repo.hub.pulls()] == [number]
    assert repo.hub.repo.out("show", "main:notes/T1-1.txt") == (
        "a person got here first\nT1-1 was here")


def test_auto_merge_not_allowed_waits_and_notifies_or_merges_directly(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo = github_repo(critic=PASSING_CRITIC)
    repo.hub.settings.allow_auto_merge = False
    engine = engine_for(repo)
    tick(engine)
    tick(engine)

    (refused,) = events(engine, ev.AUTO_MERGE_REFUSED)
    assert "Auto merge is not allowed for this repository" in refused.payload["reason"]
    assert ev.AUTO_MERGE_REFUSED in NOTIFY_EVENT_TYPES
    assert status(engine) is TaskStatus.IN_REVIEW

    repo.config.write_text(repo.config.read_text().replace(
        "[engine]\n", '[engine]\nauto_merge_fallback = "direct"\n'))
    engine = engine_for(repo)
    tick(engine)

    assert status(engine) is TaskStatus.MERGED
    (merged,) = events(engine, ev.TASK_MERGED)
    assert merged.payload["how"] == "direct"
    merge = next(r for r in repo.hub.requests if r.method == "PUT")
    assert json.loads(merge.body)["sha"] == repo.hub.pulls()[0].head_sha


def test_a_head_a_person_moved_is_disarmed_and_never_merged(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo, engine, number = in_review(github_repo)
    assert repo.hub.pull(number).auto_merge is not None
    moved = repo.hub.push("oxi/T1-1-say-hello", {"theirs.txt": "mine\n"}, "a person's commit")

    tick(engine)
    repo.hub.set_check(number, "success")
    tick(engine)

    (event,) = events(engine, ev.PR_HEAD_MOVED)
    assert event.payload["head"] == moved and event.payload["auto_merge_disarmed"] is True
    assert ev.PR_HEAD_MOVED in NOTIFY_EVENT_TYPES
    assert repo.hub.pull(number).auto_merge is None
    assert repo.hub.pull(number).state == "open"
    assert status(engine) is TaskStatus.IN_REVIEW


def test_failing_checks_are_an_event_and_a_notification(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo, engine, number = in_review(github_repo)
    repo.hub.set_check(number, "failure")
    tick(engine)
    tick(engine)  # unchanged: recorded once

    (failed,) = events(engine, ev.PR_CHECKS_FAILED)
    assert failed.payload == {"pr": number, "head": repo.hub.pull(number).head_sha,
                              "checks": "failing"}
    assert ev.PR_CHECKS_FAILED in NOTIFY_EVENT_TYPES
    assert [e.payload["checks"] for e in events(engine, ev.PR_CHECKS)] == ["pending"]
    assert status(engine) is TaskStatus.IN_REVIEW


def test_roadmap_items_are_pruned_from_what_github_merged(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo = github_repo(roadmap(("T1-1", "say hello", "n"), ("T1-2", "not yet", "m")),
                       critic=PASSING_CRITIC)
    engine = engine_for(repo)
    tick(engine)
    assert status(engine, "T1-1") is TaskStatus.MERGED

    from click.testing import CliRunner

    from oxi_core.cli import cli

    pruned = CliRunner().invoke(cli, ["--config", str(repo.config), "roadmap", "prune",
                                      "--dry-run"])
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output == "would remove T1-1\n"  # T1-2 has not shipped





def test_a_pull_request_github_failed_to_open_is_opened_next_tick_without_a_second_run(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    # One try per request, so GitHub's one 502 fails the call that opens the pull request,
    # after the branch was pushed: the agent's work is on GitHub, its pull request is not.
    repo = github_repo(critic=PASSING_CRITIC, forge={"max_attempts": 1})
    repo.hub.fail("status", match=r"^POST /api/v3/repos/octo-org/demo/pulls$", status=502)
    engine = engine_for(repo)
    branch = branch_name("T1-1", "say hello")

    tick(engine)
    assert status(engine) is TaskStatus.RETRYING
    assert repo.hub.pulls() == [] and repo.hub.repo.branch_sha(branch)
    time.sleep(0.3)  # the retry's backoff (retry_base_s 0.05)
    tick(engine)

    (pull,) = repo.hub.pulls()
    assert pull.head == branch and status(engine) is TaskStatus.MERGED
    assert len(events(engine, ev.WORKER_STARTED)) == 1  # the agent ran (and was paid) once
    assert len(events(engine, ev.DISPATCH_RESULT)) == 1
    (resumed,) = events(engine, ev.DELIVERY_RESUMED)
    (pushed,) = events(engine, ev.BRANCH_PUSHED)
    assert resumed.payload["head"] == pushed.payload["head"] == pull.head_sha
    assert (resumed.payload["attempt"], resumed.payload["pushed_by_attempt"]) == (2, 1)
    assert repo.hub.repo.out("show", f"{pull.merge_commit_sha}:notes/T1-1.txt") == (
        "T1-1 was here")
