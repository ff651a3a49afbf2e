"""The index reader (oxi_core/git_index.py) against indexes real git wrote: every version and
object format it reads gives what `git diff --cached` names, and everything it does not follow
is None (the caller asks git), never a wrong answer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxi_core import git
from oxi_core.git_index import fresh_index, index_file, parse_index, read_index
from oxi_core.testing.repos import run_git

AS_SOMEONE = ["-c", "user.name=a", "-c", "user.email=a@a"]


def make_repo(folder: Path, *, object_format: str = "sha1") -> Path:
    repo = folder / "repo"
    run_git(["init", "-q", f"--object-format={object_format}", "-b", "main", str(repo)], folder)
    (repo / "a.txt").write_text("a\n")
    (repo / "d").mkdir()
    (repo / "d" / "b.txt").write_text("b\n")
    long = repo / ("x" * 200) / ("y" * 200)
    long.mkdir(parents=True)
    (long / ("z" * 200)).write_text("a path of 600 bytes\n")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "é ü.txt").write_text("non-ASCII name\n")
    run_git(["add", "-A"], repo)
    run_git([*AS_SOMEONE, "commit", "-q", "-m", "base"], repo)
    return repo


def add_worktree(repo: Path, name: str = "wt") -> Path:
    tree = repo.parent / name
    run_git(["worktree", "add", "-q", "-b", name, str(tree), "main"], repo)
    return tree


def staged_by_git(tree: Path, base: str) -> list[str]:
    return sorted(run_git(["-c", "core.quotePath=false", "diff", "--cached", "--name-only",
                           "--no-renames", base], tree).splitlines())


def change_things(tree: Path) -> None:
    (tree / "a.txt").write_text("changed\n")
    (tree / "d" / "b.txt").unlink()
    (tree / "d" / "new.txt").write_text("new\n")
    (tree / "run.sh").chmod(0o755)  # a mode change only
    run_git(["mv", "é ü.txt", "renamed ü.txt"], tree)


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
@pytest.mark.parametrize("version", [2, 3, 4])
def test_changes_read_from_the_index_are_what_git_diff_cached_names(
        tmp_path: Path, object_format: str, version: int) -> None:
    repo = make_repo(tmp_path, object_format=object_format)
    tree = add_worktree(repo)
    fresh = fresh_index(tree, repo)
    assert fresh is not None
    assert fresh.commit == run_git(["rev-parse", "HEAD"], tree)
    before = fresh.entries()
    assert before is not None and len(before) == 5
    change_things(tree)
    run_git(["add", "-A"], tree)
    if version == 3:  # an extended flag makes git write version 3
        run_git(["update-index", "--skip-worktree", "a.txt"], tree)
        run_git(["update-index", "--no-skip-worktree", "a.txt"], tree)
        run_git(["update-index", "--skip-worktree", "d/new.txt"], tree)
    run_git(["update-index", "--index-version", str(version)], tree)
    data = index_file(tree).read_bytes()  # type: ignore[union-attr]
    assert int.from_bytes(data[4:8], "big") == version
    staged = read_index(tree, hash_bytes=len(fresh.commit) // 2)
    assert staged is not None
    assert staged.changed_since(before) == staged_by_git(tree, fresh.commit) == [
        "a.txt", "d/b.txt", "d/new.txt", "renamed ü.txt", "run.sh", "é ü.txt"]


def test_a_main_checkout_and_a_linked_worktree_are_both_found(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tree = add_worktree(repo)
    assert index_file(repo) == repo / ".git" / "index"
    assert index_file(tree) == repo / ".git" / "worktrees" / "wt" / "index"
    assert read_index(repo, hash_bytes=20) is not None


@pytest.mark.parametrize("variable", ["GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE",
                                      "GIT_COMMON_DIR"])
def test_an_index_git_is_pointed_to_elsewhere_is_not_guessed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    repo = make_repo(tmp_path)
    tree = add_worktree(repo)
    monkeypatch.setenv(variable, str(tmp_path / "elsewhere"))
    assert read_index(tree, hash_bytes=20) is None
    assert fresh_index(tree, repo) is None


def test_what_the_reader_does_not_follow_is_none(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tree = add_worktree(repo)
    good = index_file(tree).read_bytes()  # type: ignore[union-attr]
    assert parse_index(good, hash_bytes=20) is not None
    for broken in (good[:-30], good[:40], b"", b"XXXX" + good[4:],
                   good[:4] + (5).to_bytes(4, "big") + good[8:]):
        assert parse_index(broken, hash_bytes=20) is None
    assert parse_index(good, hash_bytes=32) is None  # the wrong object format

    (tree / "intent.txt").write_text("i\n")
    run_git(["add", "-N", "intent.txt"], tree)  # intent-to-add: not in the tree yet
    assert read_index(tree, hash_bytes=20) is None
    run_git(["rm", "-q", "--cached", "intent.txt"], tree)
    assert read_index(tree, hash_bytes=20) is not None

    run_git(["update-index", "--split-index"], tree)  # the entries live in another file
    assert read_index(tree, hash_bytes=20) is None


def test_a_conflicted_index_is_none(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    run_git(["checkout", "-q", "-b", "other"], repo)
    (repo / "a.txt").write_text("other\n")
    run_git([*AS_SOMEONE, "commit", "-q", "-am", "other"], repo)
    run_git(["checkout", "-q", "main"], repo)
    (repo / "a.txt").write_text("main\n")
    run_git([*AS_SOMEONE, "commit", "-q", "-am", "main"], repo)
    merged = subprocess.run(["git", *AS_SOMEONE, "merge", "-q", "other"], cwd=repo,
                            capture_output=True, check=False)
    assert merged.returncode != 0
    assert read_index(repo, hash_bytes=20) is None


def test_a_sparse_index_is_none(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    run_git(["sparse-checkout", "init", "--cone", "--sparse-index"], repo)
    run_git(["sparse-checkout", "set", "nothing"], repo)
    assert read_index(repo, hash_bytes=20) is None


def test_head_is_read_from_the_files_as_git_says(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    tree = add_worktree(repo)
    head = run_git(["rev-parse", "HEAD"], tree)
    assert git.stored_head(tree, repo) == head == git.stored_head(repo, repo)
    run_git(["pack-refs", "--all"], repo)  # the branch only in packed-refs
    assert not (repo / ".git" / "refs" / "heads" / "wt").exists()
    assert git.stored_head(tree, repo) == head
    (tree / "x.txt").write_text("x\n")
    run_git(["add", "x.txt"], tree)
    run_git([*AS_SOMEONE, "commit", "-q", "-m", "x"], tree)
    assert git.stored_head(tree, repo) == run_git(["rev-parse", "HEAD"], tree) != head
    run_git(["checkout", "-q", "--detach", head], tree)
    assert git.stored_head(tree, repo) == head


# Things an agent does to a tree, as (operation, path) over a few names.
_NAMES = ["a.txt", "d/b.txt", "d/c.txt", "e/f/g.txt", "run.sh"]
_OPERATIONS = st.lists(st.tuples(
    st.sampled_from(["write", "delete", "chmod", "stage", "unstage", "write-same"]),
    st.sampled_from(_NAMES)), max_size=8)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=_OPERATIONS)
def test_any_agent_work_reads_as_git_names_it(tmp_path_factory: pytest.TempPathFactory,
                                              operations: list[tuple[str, str]]) -> None:
    repo = make_repo(tmp_path_factory.mktemp("index"))
    tree = add_worktree(repo)
    fresh = fresh_index(tree, repo)
    before = fresh.entries() if fresh is not None else None
    assert fresh is not None and before is not None
    for number, (operation, name) in enumerate(operations):
        path = tree / name
        if operation == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{number}\n")
        elif operation == "write-same" and path.exists():
            path.write_text(path.read_text())  # new times, same content
        elif operation == "delete" and path.exists():
            path.unlink()
        elif operation == "chmod" and path.exists():
            path.chmod(path.stat().st_mode ^ 0o100)
        elif operation == "stage" and (path.exists() or name in before):
            run_git(["add", "-A", "--", name], tree)  # the agent's own staging
        elif operation == "unstage":
            run_git(["reset", "-q", "--", name], tree)
    run_git(["add", "-A"], tree)
    staged = read_index(tree, hash_bytes=20)
    assert staged is not None
    assert staged.changed_since(before) == staged_by_git(tree, fresh.commit)
