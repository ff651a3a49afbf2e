"""The local forge's squash merge, made in the bare origin itself as a hosted forge makes it
(`git merge-tree --write-tree`, `commit-tree`, one `update-ref` transaction): no worktree, no
fetch, no push. Real git, the real local forge."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from oxi_core import git
from oxi_core.builtins.local_forge import LocalForge
from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.models import PullRequestState
from oxi_core.testing.repos import TestRepo as Repo
from oxi_core.testing.repos import run_git
from tests.conftest import roadmap


def push_branch(repo: Repo, branch: str, commits: list[dict[str, str]]) -> str:
    """``branch`` on the origin, from its main, one commit per mapping of files to text."""
    folder = repo.root.parent / f"wt-{branch.replace('/', '-')}"
    run_git(["fetch", "-q", "origin"], repo.root)
    run_git(["worktree", "add", "-q", "-b", branch, str(folder), "origin/main"], repo.root)
    for n, files in enumerate(commits):
        for relative, text in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
        run_git(["add", "-A"], folder)
        run_git(["commit", "-q", "-m", f"{branch} {n}"], folder)
    run_git(["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], folder)
    return run_git(["rev-parse", "HEAD"], folder)


def forge_of(repo: Repo) -> tuple[LocalForge, Engine]:
    git._config_cache.clear()  # the identity set by the test, read as a new process would
    config = load_config(repo.config)
    engine = Engine(config)  # binds the forge to the repository and its ledger
    forge: LocalForge = config.forge
    return forge, engine


def origin_has(repo: Repo, ref: str) -> bool:
    return subprocess.run(["git", "rev-parse", "--verify", "-q", ref], cwd=repo.origin,
                          capture_output=True).returncode == 0


def test_a_squash_merge_is_one_commit_on_the_base_made_in_the_origin(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-1", "a", "b")))
    repo.git("config", "user.name", "Ada Operator")
    repo.git("config", "user.email", "ada@example.invalid")
    forge, engine = forge_of(repo)
    before = run_git(["rev-parse", "main"], repo.origin)
    head = push_branch(repo, "oxi/T1-1", [{"a.txt": "a\n"}, {"dir/b.txt": "b\n"}])
    pr = forge.open_pr(task_id="T1-1", branch="oxi/T1-1", title="add a and b", body="")

    attempt = forge.merge_now(pr.number, head_sha=head)

    assert attempt.merged, attempt.reason
    merged = run_git(["rev-parse", "main"], repo.origin)
    assert attempt.pr.merged_sha == merged
    assert run_git(["log", "--format=%P|%s|%an <%ae>|%cn", "-1", "main"], repo.origin) == (
        f"{before}|add a and b (#{pr.number})|Ada Operator <ada@example.invalid>|Ada Operator")
    assert repo.origin_file("a.txt") == "a\n" and repo.origin_file("dir/b.txt") == "b\n"
    assert run_git(["rev-parse", "main^{tree}"], repo.origin) == run_git(
        ["rev-parse", f"{head}^{{tree}}"], repo.origin)
    assert not origin_has(repo, "refs/heads/oxi/T1-1")  # the branch is deleted, as a forge does
    # Nothing was checked out for it: no merge folder, no worktree besides the test's own.
    assert not (repo.root / ".oxi" / "merges").exists()
    assert len(run_git(["worktree", "list", "--porcelain"], repo.root).split("\n\n")) == 2
    engine.ledger.close()


def test_a_conflict_names_its_files_and_leaves_the_base_and_branch(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-1", "a", "b")), files={"same.txt": "one\n"})
    forge, engine = forge_of(repo)
    first = push_branch(repo, "oxi/first", [{"same.txt": "first\n", "x.txt": "x\n"}])
    second = push_branch(repo, "oxi/second", [{"same.txt": "second\n", "y.txt": "y\n"}])
    pr1 = forge.open_pr(task_id="T1-1", branch="oxi/first", title="first", body="")
    pr2 = forge.open_pr(task_id="T1-2", branch="oxi/second", title="second", body="")
    assert forge.merge_now(pr1.number, head_sha=first).merged
    base = run_git(["rev-parse", "main"], repo.origin)

    attempt = forge.merge_now(pr2.number, head_sha=second)

    assert not attempt.merged
    assert attempt.pr.state is PullRequestState.CONFLICTED
    assert attempt.pr.closed_reason == "merge conflict in same.txt"
    assert run_git(["rev-parse", "main"], repo.origin) == base
    assert run_git(["rev-parse", "refs/heads/oxi/second"], repo.origin) == second
    engine.ledger.close()


def test_a_base_that_moves_during_the_merge_is_merged_onto_again(
    repo_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repo_factory(roadmap(("T1-1", "a", "b")))
    forge, engine = forge_of(repo)
    head = push_branch(repo, "oxi/T1-1", [{"a.txt": "a\n"}])
    pr = forge.open_pr(task_id="T1-1", branch="oxi/T1-1", title="add a", body="")
    real_git = git.git
    moved: list[str] = []

    def someone_pushes_first(args: list[str], cwd: Path, **kwargs: Any) -> Any:
        if args[:2] == ["update-ref", "--stdin"] and not moved:
            # Between the merge and its ref update, someone else's commit lands on main.
            repo.write("theirs.txt", "theirs\n")
            repo.commit_and_push("their commit")
            moved.append(run_git(["rev-parse", "main"], repo.origin))
        return real_git(args, cwd, **kwargs)

    monkeypatch.setattr(git, "git", someone_pushes_first)
    attempt = forge.merge_now(pr.number, head_sha=head)

    assert attempt.merged, attempt.reason
    assert repo.origin_log() == ["add a (#1)", "their commit", "initial commit"]
    assert run_git(["rev-parse", "main^"], repo.origin) == moved[0]
    assert repo.origin_file("theirs.txt") == "theirs\n" and repo.origin_file("a.txt") == "a\n"
    engine.ledger.close()


def recording_git(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every git command the code under test starts through oxi_core.git, in order."""
    real_git = git.git
    started: list[list[str]] = []

    def recorded(args: list[str], cwd: Path, **kwargs: Any) -> Any:
        started.append(list(args))
        return real_git(args, cwd, **kwargs)

    monkeypatch.setattr(git, "git", recorded)
    return started


@pytest.mark.parametrize("layout", ["loose", "packed"])
def test_one_commit_on_the_base_tip_merges_without_merge_tree_only_when_its_object_tells(
    repo_factory, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    # The usual pull request is one commit on the base as it is now: its own tree is the merge,
    # read from its loose object file. A packed commit cannot be read so: merge-tree decides,
    # and the squash is the same either way.
    repo = repo_factory(roadmap(("T1-1", "a", "b")))
    forge, engine = forge_of(repo)
    before = run_git(["rev-parse", "main"], repo.origin)
    head = push_branch(repo, "oxi/T1-1", [{"a.txt": "a\n"}])
    if layout == "packed":
        run_git(["repack", "-a", "-d", "-q"], repo.origin)
        run_git(["prune-packed"], repo.origin)
    pr = forge.open_pr(task_id="T1-1", branch="oxi/T1-1", title="add a", body="")
    started = recording_git(monkeypatch)

    assert forge.merge_now(pr.number, head_sha=head).merged

    ran = [args[0] for args in started]
    assert ran == (["commit-tree", "update-ref"] if layout == "loose"
                   else ["merge-tree", "commit-tree", "update-ref"])
    assert run_git(["log", "--format=%P|%s", "-1", "main"], repo.origin) == (
        f"{before}|add a (#1)")
    assert run_git(["rev-parse", "main^{tree}"], repo.origin) == run_git(
        ["rev-parse", f"{head}^{{tree}}"], repo.origin)
    engine.ledger.close()


def test_a_pull_request_lists_the_files_the_engine_pushed_else_a_diff(
    repo_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine records the files of the head it pushed (branch_pushed); opening the pull
    # request for exactly that head reuses them. A branch the engine did not push (a person's,
    # or a head moved since) is diffed in the origin.
    from oxi_core.ledger import events as ev

    repo = repo_factory(roadmap(("T1-1", "a", "b"), ("T1-2", "c", "d")))
    forge, engine = forge_of(repo)
    head = push_branch(repo, "oxi/T1-1", [{"a.txt": "a\n", "dir/b.txt": "b\n"}])
    engine.record(ev.BRANCH_PUSHED, task_id="T1-1", payload={
        "branch": "oxi/T1-1", "files": ["dir/b.txt", "a.txt"], "head": head, "attempt": 1})
    other = push_branch(repo, "oxi/T1-2", [{"c.txt": "c\n"}])
    engine.record(ev.BRANCH_PUSHED, task_id="T1-2", payload={
        "branch": "oxi/T1-2", "files": ["stale.txt"], "head": "0" * 40, "attempt": 1})
    assert forge.origin == repo.origin  # found once per process (the remote's URL)
    started = recording_git(monkeypatch)

    pr = forge.open_pr(task_id="T1-1", branch="oxi/T1-1", title="a and b", body="")
    assert pr.files == ("a.txt", "dir/b.txt") and pr.head_sha == head
    assert started == []  # heads from the origin's files, files from the ledger
    moved = forge.open_pr(task_id="T1-2", branch="oxi/T1-2", title="c", body="")
    assert moved.files == ("c.txt",) and moved.head_sha == other
    assert [args[0] for args in started] == ["diff"]
    # No pull request ref is written: nothing reads one.
    assert run_git(["for-each-ref", "refs/pull/"], repo.origin) == ""
    engine.ledger.close()
