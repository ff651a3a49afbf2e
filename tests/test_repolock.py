"""T2-47: the repository lock, shared for the git steps git keeps apart by itself (a new
worktree on a new branch, a push, removing a clean worktree), exclusive for those that touch
what every worker shares (a fetch, pruning and sweeping worktrees). Real flock, real git."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from oxi_core import git
from oxi_core.engine import worktrees
from oxi_core.policy import RepoPaths
from oxi_core.repolock import forge_lock, repo_lock
from oxi_core.testing.repos import make_repo, run_git


def test_shared_holds_overlap_and_an_exclusive_one_waits_for_them(tmp_path: Path) -> None:
    lock = repo_lock(tmp_path)
    inside = threading.Barrier(2, timeout=30)
    both_in: list[bool] = []

    def shared_holder() -> None:
        with lock.hold(shared=True):
            inside.wait()  # only returns when the other thread holds it too
            both_in.append(True)

    threads = [threading.Thread(target=shared_holder) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert both_in == [True, True]

    held, release, entered = threading.Event(), threading.Event(), threading.Event()

    def keep_shared() -> None:
        with lock.hold(shared=True):
            held.set()
            release.wait(timeout=60)

    def take_exclusive() -> None:
        with lock.hold():
            entered.set()

    keeper = threading.Thread(target=keep_shared)
    keeper.start()
    assert held.wait(timeout=30)
    taker = threading.Thread(target=take_exclusive)
    taker.start()
    assert not entered.wait(timeout=0.3)  # the exclusive hold waits for the shared one
    release.set()
    assert entered.wait(timeout=30)
    keeper.join(timeout=30)
    taker.join(timeout=30)


def test_another_process_holding_the_lock_exclusively_keeps_a_shared_hold_out(
    tmp_path: Path
) -> None:
    path = (tmp_path / "repo.lock").resolve()
    entered = threading.Event()

    def take_shared() -> None:
        with repo_lock(tmp_path).hold(shared=True):
            entered.set()

    with subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        taker = threading.Thread(target=take_shared)
        taker.start()
        assert not entered.wait(timeout=0.3)
        assert holder.stdin is not None
        holder.stdin.close()  # the holder exits: its lock goes with it
        holder.wait(timeout=30)
    assert entered.wait(timeout=30)
    taker.join(timeout=30)


def test_holds_nest_within_a_thread_but_never_turn_exclusive(tmp_path: Path) -> None:
    lock = repo_lock(tmp_path)
    with lock.hold(), lock.hold(), lock.hold(shared=True):
        pass  # inside an exclusive hold, anything runs under it
    with lock.hold(shared=True), pytest.raises(RuntimeError, match="inside a shared one"), \
            lock.hold():
        pass
    with lock.hold():  # released properly after the refusal
        pass
    # The local forge's lock is another file: a merge never waits for a worktree or a push.
    assert forge_lock(tmp_path).path != lock.path
    with lock.hold(), forge_lock(tmp_path).hold():
        pass


def test_worktree_adds_and_pushes_under_the_shared_lock_run_beside_each_other_and_fetches(
    tmp_path: Path
) -> None:
    # What the shared hold claims of git: new worktrees on new branches and pushes of their
    # branches run at once, in several threads, while fetches (exclusive) keep coming, and
    # none of them meets another's lock file.
    repo = make_repo(tmp_path, {"a.txt": "a\n"})
    run_git(["fetch", "-q", "origin"], repo.root)
    paths = RepoPaths.under(repo.root)
    lock = repo_lock(paths.state_dir)
    stop = threading.Event()
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@t"}

    def fetches() -> int:
        count = 0
        while not stop.is_set():
            with lock.hold():
                git.git(["fetch", "--quiet", "--prune", "origin"], repo.root)
            count += 1
        return count

    def deliver(n: int) -> str:
        task_id, branch = f"T1-{n}", f"oxi/T1-{n}-x"
        with lock.hold(shared=True):
            tree = worktrees.add_new_worktree(paths, task_id, branch, base_ref="origin/main")
        assert tree is not None
        (tree.path / f"{n}.txt").write_text(str(n))
        git.git(["add", "-A"], tree.path)
        git.git(["commit", "-q", "-m", str(n)], tree.path, env=identity)
        with lock.hold(shared=True):
            git.git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], tree.path)
            assert worktrees.remove_clean_worktree(paths, tree.path)
        return branch

    with ThreadPoolExecutor(max_workers=7) as pool:
        fetcher = pool.submit(fetches)
        branches = list(pool.map(deliver, range(1, 13)))
        stop.set()
        assert fetcher.result() >= 1
    pushed = run_git(["for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/oxi/"],
                     repo.origin).splitlines()
    assert sorted(pushed) == sorted(branches)
    assert not any(paths.worktrees_dir.iterdir())
    assert run_git(["worktree", "list", "--porcelain"], repo.root).count("worktree ") == 1
