"""Kept worktrees do not pile up (issue 9, point 8): build droppings are not work, a kept
worktree is reported once, and `oxi worktree list|prune` show and clear what is left, never
losing an unpushed commit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.testing.repos import exec_agent_toml, run_git
from tests.conftest import SCRIPTED_AGENT, roadmap
from tests.unattended.support import run_oxi

if TYPE_CHECKING:
    from oxi_core.testing.repos import TestRepo

# The critic imports the repository's module, as a test run does: Python leaves __pycache__/
# in the worktree, and this repository does not ignore it.
CRITIC = [[sys.executable, "-c", "import sys; sys.path.insert(0, '.'); import helper"]]


def ledger_of(repo: TestRepo) -> Ledger:
    return Ledger(repo.root / ".oxi" / "oxi.db")


def worktrees_of(repo: TestRepo) -> list[str]:
    folder = repo.root / ".oxi" / "worktrees"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def ticked(repo: TestRepo) -> None:
    done = run_oxi(["tick"], cwd=repo.root)
    assert done.returncode == 0, done.stderr


def test_a_critics_build_droppings_do_not_keep_a_merged_worktree(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "a note", "n")),
                        files={".gitignore": ".oxi/\n", "helper.py": "VALUE = 1\n"})
    repo.write("oxi.toml", exec_agent_toml(SCRIPTED_AGENT, critic=CRITIC))
    for _ in range(4):
        ticked(repo)

    with ledger_of(repo) as ledger:
        assert ledger.task("T1-5").status == "merged"
        assert ledger.events(types=[ev.WORKTREE_KEPT]) == []
        assert len(ledger.events(types=[ev.WORKTREE_REMOVED])) == 1
    assert worktrees_of(repo) == []
    # The droppings never reached the pull request either.
    assert "__pycache__" not in run_git(["ls-tree", "-r", "--name-only", "main"], repo.origin)


def test_build_droppings_an_agent_leaves_are_neither_committed_nor_kept(repo_factory) -> None:
    # The agent runs the tests itself, then writes its work: the droppings are not work.
    agent = [sys.executable, "-c",
             "import pathlib, sys; sys.path.insert(0, '.'); import helper; "
             "pathlib.Path('node_modules/x').mkdir(parents=True); "
             "pathlib.Path('node_modules/x/index.js').write_text('x'); "
             "pathlib.Path('.pytest_cache').mkdir(); "
             "pathlib.Path('notes.txt').write_text('work')"]
    repo = repo_factory(roadmap(("T1-5", "a note", "n")),
                        files={".gitignore": ".oxi/\n", "helper.py": "VALUE = 1\n"})
    repo.write("oxi.toml", exec_agent_toml(agent))
    ticked(repo)
    files = run_git(["ls-tree", "-r", "--name-only", "oxi/T1-5-a-note"], repo.origin)
    assert "notes.txt" in files.splitlines()
    assert not [f for f in files.splitlines()
                if f.startswith(("__pycache__", "node_modules", ".pytest_cache"))], files
    assert worktrees_of(repo) == []


def add_leftover(repo: TestRepo, task_id: str) -> Path:
    """A worktree as a crash or an old oxi left it: on the task's branch, at origin's main."""
    path = repo.root / ".oxi" / "worktrees" / task_id
    run_git(["worktree", "add", "-q", "-b", f"oxi/{task_id}-left", str(path), "origin/main"],
            repo.root)
    return path


def test_a_kept_worktree_is_reported_once_not_every_tick(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "a note", "n")))
    ticked(repo)
    kept = add_leftover(repo, "T1-9")
    (kept / "roadmap.md").write_text("edited by hand, never committed\n")
    for _ in range(3):
        ticked(repo)
    with ledger_of(repo) as ledger:
        (event,) = ledger.events(types=[ev.WORKTREE_KEPT])
        assert event.task_id == "T1-9" and event.payload["reason"] == "uncommitted changes"
    assert (kept / "roadmap.md").read_text() == "edited by hand, never committed\n"

    # A new reason is news: reported again, once.
    (kept / "roadmap.md").write_text(run_git(["show", "HEAD:roadmap.md"], kept) + "\n")
    run_git(["checkout", "-q", "--", "roadmap.md"], kept)
    (kept / "unpushed.txt").write_text("x")
    run_git(["add", "unpushed.txt"], kept)
    run_git(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "local"], kept)
    ticked(repo)
    ticked(repo)
    with ledger_of(repo) as ledger:
        reasons = [e.payload["reason"] for e in ledger.events(types=[ev.WORKTREE_KEPT])]
    assert reasons == ["uncommitted changes",
                       "commits that exist only in this worktree (no origin/oxi/T1-9-left)"]


def test_oxi_worktree_list_and_prune_never_lose_an_unpushed_commit(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "a note", "n")))
    ticked(repo)  # a ledger; T1-5 merged and its worktree removed
    add_leftover(repo, "T1-7")  # nothing in it that origin lacks
    dropped = add_leftover(repo, "T1-6")
    (dropped / "__pycache__").mkdir()
    (dropped / "__pycache__" / "x.pyc").write_bytes(b"\0")  # droppings only
    dirty = add_leftover(repo, "T1-8")
    (dirty / "roadmap.md").write_text("uncommitted\n")
    ahead = add_leftover(repo, "T1-9")
    (ahead / "work.txt").write_text("committed, never pushed\n")
    run_git(["add", "work.txt"], ahead)
    run_git(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "work"], ahead)
    head = run_git(["rev-parse", "HEAD"], ahead)

    listed = run_oxi(["worktree", "list", "--json"], cwd=repo.root)
    assert listed.returncode == 0, listed.stderr
    rows = {row["task"]: row for row in json.loads(listed.stdout)["worktrees"]}
    assert sorted(rows) == ["T1-6", "T1-7", "T1-8", "T1-9"]
    assert rows["T1-6"]["holds"] is None and rows["T1-7"]["holds"] is None
    assert rows["T1-8"]["holds"] == "uncommitted changes"
    assert rows["T1-9"]["holds"].startswith("commits that exist only in this worktree")
    assert rows["T1-9"]["branch"] == "oxi/T1-9-left" and rows["T1-9"]["path"] == str(ahead)
    text = run_oxi(["worktree", "list"], cwd=repo.root)
    assert "T1-9" in text.stdout and "commits that exist only" in text.stdout

    pruned = run_oxi(["worktree", "prune"], cwd=repo.root)
    assert pruned.returncode == 1  # something was refused
    assert "removed T1-6" in pruned.stdout and "removed T1-7" in pruned.stdout
    assert "kept T1-8: uncommitted changes" in pruned.stdout
    assert "kept T1-9: commits that exist only" in pruned.stdout
    assert "--discard-uncommitted" in pruned.stdout
    assert worktrees_of(repo) == ["T1-8", "T1-9"]

    forced = run_oxi(["worktree", "prune", "--discard-uncommitted"], cwd=repo.root)
    assert forced.returncode == 1, forced.stdout  # T1-9 still refused
    assert "removed T1-8" in forced.stdout and "kept T1-9" in forced.stdout
    assert worktrees_of(repo) == ["T1-9"]
    assert run_git(["rev-parse", "HEAD"], ahead) == head  # the unpushed commit is intact

    with ledger_of(repo) as ledger:
        removed = [e for e in ledger.events(types=[ev.WORKTREE_REMOVED])
                   if e.payload.get("by") == "operator"]
    assert sorted(e.task_id for e in removed) == ["T1-6", "T1-7", "T1-8"]
