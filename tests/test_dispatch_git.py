"""What a dispatch does in git, in its short paths: a worktree made without looking for a branch
first, "no changes" seen without a diff, and removal that trusts git's own cleanliness check.
Each short path must end where the careful one would."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from oxi_core.config import load_config
from oxi_core.engine import worktrees
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing import repos
from oxi_core.testing.repos import exec_agent_toml, make_repo, run_git
from tests.conftest import roadmap, tick

ITEM = ("T1-5", "notes", "n")
BRANCH = "oxi/T1-5-notes"

# A `git` helper with an identity, for agents that commit.
GIT_AS_AGENT = ('def git(*a):\n'
                '    subprocess.run(["git", "-c", "user.name=a", "-c", "user.email=a@a", *a],'
                ' check=True, capture_output=True)\n')


def agent(body: str, *, with_git: bool = False) -> list[str]:
    """An exec agent: a few lines of Python run in the worktree."""
    code = "import os, pathlib, subprocess\n" + (GIT_AS_AGENT if with_git else "")
    return [sys.executable, "-c", code + textwrap.dedent(body)]


def setup(tmp_path: Path, argv: list[str]) -> repos.TestRepo:
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(ITEM)})
    repo.write("oxi.toml", exec_agent_toml(argv, engine={
        "retry_base_s": 0.01, "retry_max_s": 0.02, "max_attempts": 2}))
    return repo


def test_a_do_nothing_agent_fails_no_changes_and_leaves_no_worktree(tmp_path: Path) -> None:
    repo = setup(tmp_path, agent("pass"))
    engine = Engine(load_config(repo.config))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.FAILED
    assert (task.last_error or "").startswith("no changes")
    assert not (repo.root / ".oxi" / "worktrees" / "T1-5").exists()
    assert "T1-5" not in run_git(["worktree", "list"], repo.root)
    types = [e.type for e in engine.ledger.events(task_id="T1-5")]
    assert ev.WORKTREE_REMOVED in types and ev.BRANCH_PUSHED not in types


def test_commits_that_cancel_out_are_still_no_changes(tmp_path: Path) -> None:
    # HEAD moved, the tree is clean, but there is no diff: the careful path must decide.
    repo = setup(tmp_path, agent(with_git=True, body="""
        pathlib.Path("x.txt").write_text("x")
        git("add", "x.txt"); git("commit", "-q", "-m", "add x")
        git("revert", "--no-edit", "HEAD")
    """))
    engine = Engine(load_config(repo.config))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.FAILED
    assert (task.last_error or "").startswith("no changes")
    assert run_git(["ls-remote", "origin", BRANCH], repo.root) == ""


def test_an_agent_that_commits_its_own_work_is_delivered_as_is(tmp_path: Path) -> None:
    repo = setup(tmp_path, agent(with_git=True, body="""
        pathlib.Path("own.txt").write_text("mine")
        git("add", "own.txt"); git("commit", "-q", "-m", "the agent's own commit")
    """))
    engine = Engine(load_config(repo.config))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error
    pushed = [e for e in engine.ledger.events(task_id="T1-5") if e.type == ev.BRANCH_PUSHED]
    assert pushed and pushed[0].payload["files"] == ["own.txt"]
    assert not (repo.root / ".oxi" / "worktrees" / "T1-5").exists()


def test_the_files_of_oxis_own_commit_are_those_git_diff_names(tmp_path: Path) -> None:
    # The agent committed nothing itself: the files are read from the index (T2-49), not from
    # a diff afterwards. They must be the diff's: new (in a new folder), changed, deleted and
    # renamed files (a rename under both names: both are touched); droppings neither
    # committed nor listed.
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(ITEM), "keep.txt": "k\n",
                                "gone.txt": "g\n", "old.txt": "o\n",
                                ".gitignore": ".oxi/\n"})
    repo.write("oxi.toml", exec_agent_toml(agent("""
        pathlib.Path("deep/er").mkdir(parents=True)
        pathlib.Path("deep/er/new.txt").write_text("n")
        pathlib.Path("keep.txt").write_text("changed")
        os.remove("gone.txt")
        subprocess.run(["git", "mv", "old.txt", "moved.txt"], check=True)
        pathlib.Path("deep/__pycache__").mkdir()
        pathlib.Path("deep/__pycache__/x.cpython-312.pyc").write_text("bytecode")
    """), engine={"max_attempts": 1}))
    engine = Engine(load_config(repo.config))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error
    pushed = [e for e in engine.ledger.events(task_id="T1-5") if e.type == ev.BRANCH_PUSHED]
    head = pushed[0].payload["head"]
    by_diff = run_git(["diff", "--name-only", "--no-renames", f"main...{head}"],
                      repo.origin).splitlines()
    assert pushed[0].payload["files"] == sorted(by_diff) == [
        "deep/er/new.txt", "gone.txt", "keep.txt", "moved.txt", "old.txt"]
    assert task.files_touched == tuple(sorted(by_diff))


def test_a_branch_only_on_the_remote_is_continued_not_overwritten(tmp_path: Path) -> None:
    # Work pushed by an earlier life of this repository (a ledger since deleted): the first
    # attempt the new ledger knows of must build on it, and its push must not replace it.
    repo = setup(tmp_path, agent("""
        pathlib.Path("second.txt").write_text("2")
    """))
    other = tmp_path / "other"
    run_git(["clone", "-q", str(repo.origin), str(other)], tmp_path)
    (other / "first.txt").write_text("1")
    run_git(["checkout", "-q", "-b", BRANCH], other)
    run_git(["add", "first.txt"], other)
    run_git(["-c", "user.name=a", "-c", "user.email=a@a", "commit", "-q", "-m", "earlier"],
            other)
    run_git(["push", "-q", "origin", BRANCH], other)
    earlier = run_git(["rev-parse", "HEAD"], other)

    engine = Engine(load_config(repo.config))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error
    pr = engine.config.forge.get_pr(task.pr_number)  # type: ignore[arg-type]
    assert set(pr.files) == {"first.txt", "second.txt"}
    # The pushed branch held the earlier commit: it was continued, not replaced.
    run_git(["merge-base", "--is-ancestor", earlier, pr.head_sha], repo.root)


def test_a_branch_left_by_a_crash_before_checkout_is_continued(tmp_path: Path) -> None:
    # `git worktree add -b` creates the branch, then the folder: a crash between the two leaves
    # a branch the ledger does not know. The short path's add fails; the careful one continues.
    repo = setup(tmp_path, agent('pathlib.Path("more.txt").write_text("more")'))
    run_git(["branch", BRANCH, "origin/main"], repo.root)
    engine = Engine(load_config(repo.config))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error


def test_delivered_removal_keeps_a_tree_with_uncommitted_changes(tmp_path: Path) -> None:
    repo = setup(tmp_path, agent("pass"))
    config = load_config(repo.config)
    tree = worktrees.ensure_worktree(config.paths, "T1-5", BRANCH, base_ref="origin/main",
                                     remote="origin", first=True)
    (tree.path / "stray.txt").write_text("written after the push")
    kept = worktrees.remove_delivered_worktree(config.paths, tree.path, branch=BRANCH,
                                               remote="origin")
    assert kept == "uncommitted changes"
    assert (tree.path / "stray.txt").read_text() == "written after the push"


def test_a_first_attempt_over_a_hand_deleted_worktree_rebuilds_it(tmp_path: Path) -> None:
    # The folder of a registered worktree was deleted by hand: git refuses the short path's
    # add ("missing but already registered"); the careful path prunes and adds.
    repo = setup(tmp_path, agent("pass"))
    config = load_config(repo.config)
    tree = worktrees.ensure_worktree(config.paths, "T1-5", BRANCH, base_ref="origin/main",
                                     remote="origin", first=True)
    shutil.rmtree(tree.path)
    again = worktrees.ensure_worktree(config.paths, "T1-5", BRANCH, base_ref="origin/main",
                                      remote="origin", first=True)
    assert again.path == tree.path and (again.path / ".git").is_file()
    assert run_git(["rev-parse", "--abbrev-ref", "HEAD"], again.path) == BRANCH
    listed = run_git(["worktree", "list", "--porcelain"], repo.root)
    assert listed.count(f"worktree {tree.path}") == 1 and "prunable" not in listed


def test_refs_are_read_from_files_only_when_git_would_say_the_same(tmp_path: Path) -> None:
    # `oxi status` compares the operator's main with origin's without a git process when both
    # name one commit; every case the files cannot settle falls back to git.
    from oxi_core.git import behind_and_ahead, rev_parse, stored_ref

    repo = make_repo(tmp_path, {"a.txt": "a\n"})
    head = rev_parse("refs/heads/main", repo.root)
    assert stored_ref("refs/heads/main", repo.root) == head  # a loose ref
    assert behind_and_ahead("refs/heads/main", "refs/remotes/origin/main", repo.root) == (0, 0)
    repo.git("pack-refs", "--all")
    assert stored_ref("refs/remotes/origin/main", repo.root) == head  # from packed-refs
    assert stored_ref("refs/heads/nothing", repo.root) is None
    assert stored_ref("HEAD", repo.root) is None  # not a full ref: git answers
    repo.git("symbolic-ref", "refs/heads/alias", "refs/heads/main")
    assert stored_ref("refs/heads/alias", repo.root) is None  # symbolic: git answers
    repo.git("worktree", "add", "-q", str(tmp_path / "linked"))
    assert stored_ref("refs/heads/main", tmp_path / "linked") is None  # a .git file
    # Different commits still go to git, which counts them.
    repo.write("b.txt", "b\n")
    repo.git("add", "b.txt")
    repo.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "b")
    assert behind_and_ahead("refs/heads/main", "refs/remotes/origin/main", repo.root) == (0, 1)
    assert behind_and_ahead("refs/remotes/origin/main", "refs/heads/main", repo.root) == (1, 0)


def test_ref_listings_from_files_match_for_each_ref(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The remote's branches after a fetch, and a bare origin's heads, are read from files;
    # whatever the layout (loose, packed, a symbolic HEAD, a branch with slashes) the answer
    # is for-each-ref's, and a layout the files cannot settle is left to git.
    from oxi_core.git import read_refs, remote_heads

    def by_git(repo: Path, prefix: str) -> dict[str, str]:
        listing = run_git(["for-each-ref", "--format=%(refname)%00%(objectname)", prefix], repo)
        return dict(line.split("\0", 1) for line in listing.splitlines())

    repo = make_repo(tmp_path, {"a.txt": "a\n"})
    repo.git("push", "-q", "origin", "main:oxi/T1-5-notes", "main:other")
    repo.git("fetch", "-q", "origin")
    repo.git("remote", "set-head", "origin", "main")  # a symbolic refs/remotes/origin/HEAD
    for _layout in ("loose", "packed"):
        for where, prefix in ((repo.root, "refs/remotes/origin/"), (repo.origin, "refs/heads/")):
            assert read_refs(where, prefix) == by_git(where, prefix)
        assert remote_heads("origin", repo.root) == {
            name.removeprefix("refs/remotes/origin/"): sha
            for name, sha in by_git(repo.root, "refs/remotes/origin/").items()}
        repo.git("pack-refs", "--all")
        run_git(["pack-refs", "--all"], repo.origin)
    # A loose ref written over a packed one wins, as in git.
    repo.write("b.txt", "b\n")
    repo.git("add", "b.txt")
    repo.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "b")
    repo.git("push", "-q", "origin", "main:other")
    repo.git("fetch", "-q", "origin")
    assert read_refs(repo.root, "refs/remotes/origin/") == by_git(repo.root,
                                                                  "refs/remotes/origin/")
    assert read_refs(repo.origin, "refs/heads/") == by_git(repo.origin, "refs/heads/")
    # A symbolic ref pointing outside the listing, a linked worktree: git answers.
    repo.git("symbolic-ref", "refs/remotes/origin/odd", "refs/heads/main")
    assert read_refs(repo.root, "refs/remotes/origin/") is None
    repo.git("worktree", "add", "-q", str(tmp_path / "linked"))
    assert read_refs(tmp_path / "linked", "refs/heads/") is None
    monkeypatch.setenv("GIT_DIR", str(repo.root / ".git"))  # git is pointed elsewhere
    assert read_refs(repo.origin, "refs/heads/") is None
    monkeypatch.delenv("GIT_DIR")
    assert remote_heads("origin", tmp_path / "linked") == {
        name.removeprefix("refs/remotes/origin/"): sha
        for name, sha in by_git(repo.root, "refs/remotes/origin/").items()}


def test_a_commit_is_read_from_its_loose_object_only(tmp_path: Path) -> None:
    # The local forge reads a pushed commit's tree and parents from its object file; anything
    # else (packed, not a commit, not an object id) is left to git.
    from oxi_core.git import StoredCommit, stored_commit

    repo = make_repo(tmp_path, {"a.txt": "a\n"})
    repo.write("b.txt", "b\n")
    repo.git("add", "b.txt")
    repo.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "b")
    head, parent = run_git(["rev-parse", "HEAD", "HEAD^"], repo.root).split()
    tree = run_git(["rev-parse", "HEAD^{tree}"], repo.root)
    assert stored_commit(head, repo.root) == StoredCommit(tree, (parent,))
    root_commit = run_git(["rev-list", "--max-parents=0", "HEAD"], repo.root)
    assert stored_commit(root_commit, repo.root) is not None
    assert stored_commit(root_commit, repo.root).parents == ()  # type: ignore[union-attr]
    assert stored_commit(tree, repo.root) is None  # a tree, not a commit
    assert stored_commit("HEAD", repo.root) is None  # not an object id
    repo.git("repack", "-a", "-d", "-q")
    repo.git("prune-packed")
    assert stored_commit(head, repo.root) is None  # packed: git answers
