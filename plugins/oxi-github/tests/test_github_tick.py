"""`oxi tick` end to end against the loopback GitHub, as real processes: the exec agent and the
real Claude Code CLI do the work, branches are pushed over HTTP with the token through git's
credential helper, pull requests are opened, the file-overlap gate defers what overlaps an open
pull request (seed T0-104: five tasks on one file, zero conflicts), the critic's approval arms
auto-merge, the merge is observed, and the roadmap is pruned from the merged commits. An idle
tick with 50 open pull requests makes at most 3 requests that count against the rate limit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from github_fixtures import (
    PASSING_CRITIC,
    TOKEN_ENV,
    GitHubRepo,
    git_shim,
    ledger_of,
    oxi_env,
    roadmap,
    run_oxi,
)

from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus


def tick(repo: GitHubRepo, shim: Path | None = None, **env: str) -> dict[str, object]:
    done = run_oxi(repo, "tick", "--json", shim=shim, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    document: dict[str, object] = json.loads(done.stdout)
    return document


def statuses(repo: GitHubRepo) -> dict[str, str]:
    with ledger_of(repo) as ledger:
        return {t.id: str(t.status) for t in ledger.tasks()}


def test_oxi_tick_pushes_over_http_opens_reviews_arms_merges_and_prunes(
    github_repo: Callable[..., GitHubRepo], tmp_path: Path,
) -> None:
    probe, env_log = tmp_path / "probe", tmp_path / "agent-env"
    env_log.mkdir()
    repo = github_repo(roadmap(("T1-1", "say hello", "n"), ("T1-2", "say more", "m")),
                       critic=PASSING_CRITIC, engine={"max_concurrent": 2},
                       agent_env={"AGENT_SECRET_PROBE_FILE": str(probe),
                                  "AGENT_ENV_LOG": str(env_log)})
    probe.write_text(repo.hub.token)
    hub = repo.hub
    hub.settings.checks_on_push = "pending"  # the repository's CI runs after each push
    shim = git_shim(tmp_path / "shim")

    first = tick(repo, shim)

    assert sorted(first["tick"]["dispatched"]) == ["T1-1", "T1-2"]  # type: ignore[index]
    assert statuses(repo) == {"T1-1": "in_review", "T1-2": "in_review"}
    pulls = hub.pulls()
    assert [(p.title, p.labels, p.state) for p in pulls] == [
        ("T1-1: say hello", ["oxi"], "open"), ("T1-2: say more", ["oxi"], "open")] or [
        (p.title, p.labels, p.state) for p in reversed(pulls)] == [
        ("T1-1: say hello", ["oxi"], "open"), ("T1-2: say more", ["oxi"], "open")]
    # The critic approved: its review is on the pull request, and auto-merge is armed.
    assert all(p.auto_merge is not None and p.auto_merge["merge_method"] == "SQUASH"
               for p in pulls)
    assert all(p.reviews and "APPROVE" in p.reviews[0]["body"] for p in pulls)

    for pull in pulls:
        hub.set_check(pull.number, "success")  # the checks pass: GitHub merges them
    second = tick(repo, shim)

    assert sorted(second["tick"]["merged"]) == ["T1-1", "T1-2"]  # type: ignore[index]
    assert statuses(repo) == {"T1-1": "merged", "T1-2": "merged"}
    assert hub.repo.heads() .keys() == {"main"}  # merged branches deleted
    log = [c.message.splitlines()[0] for c in hub.repo.log("main")]
    assert sorted(log[:2]) == sorted(f"{p.title} (#{p.number})" for p in pulls)
    with ledger_of(repo) as ledger:
        confirmed = ledger.events(types=[ev.AUTO_MERGE_CONFIRMED])
        assert sorted(e.task_id or "" for e in confirmed) == ["T1-1", "T1-2"]
        assert len(ledger.events(types=[ev.PR_BRANCH_DELETED])) == 2
        requests = ledger.events(types=[ev.FORGE_REQUESTS])
        assert len(requests) == 2 and all(e.payload["forge"] == "github" for e in requests)

    pruned = run_oxi(repo, "roadmap", "prune", shim=shim)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout == "removed T1-1, T1-2\n"

    # The token went to git through its credential helper only.
    token = hub.token
    argv = (shim / "argv.log").read_text()
    assert "push --quiet origin HEAD:refs/heads/oxi/T1-1-say-hello" in argv
    assert "fetch" in argv
    assert token not in argv
    assert token not in (repo.root / ".git" / "config").read_text()
    assert token not in (repo.root / ".oxi" / "oxi.db").read_bytes().decode("latin-1")
    for done in (pruned,):
        assert token not in done.stdout + done.stderr
    # ... and never reached an agent.
    for task_id in ("T1-1", "T1-2"):
        assert json.loads((env_log / f"{task_id}.json").read_text()) == []


def test_an_open_pull_request_defers_an_overlapping_task(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    items = roadmap(("T1-1", "edit the shared file", "appends to `shared.txt`"),
                    ("T1-2", "edit it again", "appends to `shared.txt` too"))
    repo = github_repo(items, files={"shared.txt": "start\n"}, critic=PASSING_CRITIC,
                       agent_env={"AGENT_TARGET": "shared.txt"})
    repo.hub.settings.checks_on_push = "pending"  # T1-1's pull request stays open

    tick(repo)  # T1-1 runs; T1-2 waits for the task in flight
    document = tick(repo)  # T1-1's pull request is open: T1-2 still waits

    (pull,) = repo.hub.pulls()
    deferred = document["tick"]["deferred"]  # type: ignore[index]
    assert deferred == [{"task": "T1-2", "reason": deferred[0]["reason"]}]  # type: ignore[index]
    assert f"#{pull.number}" in deferred[0]["reason"] or "T1-1" in deferred[0]["reason"]  # type: ignore[index]
    assert statuses(repo)["T1-2"] == "planned"

    repo.hub.set_check(pull.number, "success")  # it merges; T1-2 may go
    tick(repo)
    tick(repo)
    repo.hub.set_check(max(p.number for p in repo.hub.pulls()), "success")
    tick(repo)
    assert statuses(repo) == {"T1-1": "merged", "T1-2": "merged"}
    assert repo.hub.repo.out("show", "main:shared.txt").splitlines() == [
        "start", "T1-1 was here", "T1-2 was here"]


def test_five_tasks_on_one_file_dispatched_together_merge_without_a_conflict(
    github_repo: Callable[..., GitHubRepo], tmp_path: Path,
) -> None:
    """Seed T0-104's acceptance, against GitHub: `oxi saturate -j 5`, five items naming the
    same file; each waits for the one before to merge, and none conflicts."""
    ids = [f"T1-{n}" for n in range(5, 10)]
    items = roadmap(*[(task_id, f"edit the shared file ({task_id})", "appends to `shared.txt`")
                      for task_id in ids])
    repo = github_repo(items, files={"shared.txt": "start\n"}, critic=PASSING_CRITIC,
                       agent_env={"AGENT_TARGET": "shared.txt", "AGENT_SLEEP": "0.2"})
    log = tmp_path / "saturate.err"
    with log.open("w") as err:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "oxi_core", "saturate", "-j", "5", "--interval", "0.2"],
            cwd=repo.root, env=oxi_env(repo), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            done = statuses(repo) if (repo.root / ".oxi" / "oxi.db").exists() else {}
            if len(done) == 5 and set(done.values()) == {"merged"}:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"not all merged: {statuses(repo)}\n{log.read_text()[-3000:]}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0

    lines = repo.hub.repo.out("show", "main:shared.txt").splitlines()
    assert lines[0] == "start"
    assert sorted(lines[1:]) == sorted(f"{task_id} was here" for task_id in ids)
    assert all(p.merged for p in repo.hub.pulls()) and len(repo.hub.pulls()) == 5
    with ledger_of(repo) as ledger:
        assert ledger.events(types=[ev.PR_CONFLICTED]) == []
        assert all(t.attempts == 1 for t in ledger.tasks())
        deferred = ledger.events(types=[ev.TASK_DEFERRED])
        assert {e.task_id for e in deferred} >= set(ids) - {ledger.events(
            types=[ev.TASK_CLAIMED])[0].task_id}
        assert all(e.payload["gate"] == "file_overlap" for e in deferred)


def test_an_idle_tick_with_50_open_pull_requests_makes_at_most_3_counted_requests(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    ids = [f"T1-{n}" for n in range(1, 51)]
    # No critic: each pull request waits for a person, so all 50 stay open.
    repo = github_repo(roadmap(*[(task_id, f"note {task_id}", "n") for task_id in ids]),
                       engine={"max_concurrent": 25})
    for _ in range(4):
        tick(repo)
        if set(statuses(repo).values()) == {"in_review"}:
            break
    assert set(statuses(repo).values()) == {"in_review"} and len(repo.hub.pulls()) == 50
    tick(repo)  # a first idle tick fills the cache
    since = len(repo.hub.requests)

    document = tick(repo)  # a new process, as every `oxi tick` is

    counted = repo.hub.counted(since)
    made = repo.hub.requests[since:]
    assert len(counted) <= 3, [(r.method, r.path, r.status) for r in counted]
    assert {r.status for r in made} <= {200, 304}
    # The list answered 304 (twice: `oxi tick` observes before and after its workers); the
    # one counted request is the GraphQL query for the open pull requests' checks.
    assert [r.resource for r in counted] == ["graphql"]
    figures = document["tick"]["forge_requests"]  # type: ignore[index]
    assert figures["counted"] == len(counted) and figures["requests"] == len(made)  # type: ignore[index]
    assert figures["not_modified"] == len(made) - len(counted)  # type: ignore[index]
    status = run_oxi(repo, "status")
    assert f"forge: github: {len(made)} requests last tick ({len(counted)} counted)" in (
        status.stdout)


@pytest.mark.real_cli
def test_oxi_tick_with_the_real_claude_cli_delivers_to_github(
    github_repo: Callable[..., GitHubRepo], tmp_path: Path,
) -> None:
    from oxi_core.testing.agent_clis import claude_binary
    from oxi_core.testing.anthropic_server import AnthropicServer
    from oxi_core.testing.model_server import Script, Text, ToolCall

    binary = claude_binary()
    if binary is None:
        pytest.skip("run scripts/install-agent-clis")
    check = [[sys.executable, "-c", "import pathlib, sys; "
              "sys.exit(pathlib.Path('hello.txt').read_text() != 'hello\\n')"]]
    script = Script([ToolCall.write("hello.txt", "hello\n"), Text("DONE: wrote hello.txt")])
    with AnthropicServer(script) as server:
        repo = github_repo(roadmap(("T1-1", "say hello", "hello.txt says hello")),
                           critic=check, agent={"type": "claude", "kwargs": {
                               "binary": str(binary), "base_url": server.base_url,
                               "api_key": "test", "model": "claude-sonnet-4-5",
                               "home": str(tmp_path / "home")}})
        document = tick(repo)
        assert len(server.turns) == 2

    assert document["tick"]["merged"] == ["T1-1"]  # type: ignore[index]
    assert repo.hub.repo.out("show", "main:hello.txt") == "hello"
    (pull,) = repo.hub.pulls()
    assert pull.merged and pull.labels == ["oxi"]
    with ledger_of(repo) as ledger:
        (result,) = ledger.events(types=[ev.DISPATCH_RESULT])
        assert result.payload["classification"] == "SUCCESS"
        task = ledger.task("T1-1")
        assert task is not None and task.status is TaskStatus.MERGED


def test_a_refused_token_pauses_oxi_and_fails_nothing(
    github_repo: Callable[..., GitHubRepo],
) -> None:
    repo = github_repo(critic=PASSING_CRITIC)
    done = run_oxi(repo, "tick", **{TOKEN_ENV: "ghp_revoked0000000000000000000000000000"})
    assert done.returncode == 0, done.stderr

    assert statuses(repo) == {"T1-1": "planned"}
    assert repo.hub.pulls() == []
    status = run_oxi(repo, "status")
    assert "PAUSED" in status.stdout
    assert f"the environment variable {TOKEN_ENV}" in status.stdout
    assert "401 Bad credentials" in status.stdout
    assert "ghp_revoked" not in status.stdout + done.stdout + done.stderr
