"""The loop's safety properties: dry runs, concurrent ticks, broken lines, hostile titles,
crashes mid-dispatch, and retries that survive a restart."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from oxi_core.engine import worktrees
from oxi_core.engine.engine import Engine
from oxi_core.engine.retry import backoff_delay_s
from oxi_core.errors import WorktreeError
from oxi_core.ledger import events as ev
from oxi_core.models import isoformat
from oxi_core.policy import Policy, RepoPaths
from oxi_core.tasks import TaskStatus
from tests.conftest import SCRIPTED_AGENT, load, roadmap, tick


def oxi(*args: str, cwd: Path,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "oxi_core", *args], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, "OXI_RAISE_ERRORS": "0",
                                                    **(env or {})}, timeout=120)


def tree_digest(root: Path) -> str:
    """Every file under root (the .git folder included), with its bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_dry_run_changes_nothing(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-1", "answer", "feature_1.py"), ("T1-5", "notes", "n")))
    tick(Engine(load(repo)))  # a ledger, merged work and refs exist
    (repo.root / "roadmap.md").write_text(
        roadmap(("T1-1", "answer", "feature_1.py"), ("T1-5", "notes", "n"), ("T1-6", "x", "y")))
    before = (tree_digest(repo.root), tree_digest(repo.origin))
    result = oxi("tick", "--dry-run", "--json", cwd=repo.root)
    assert result.returncode == 0, result.stderr
    assert '"task": "T1-6"' in result.stdout
    assert (tree_digest(repo.root), tree_digest(repo.origin)) == before


def test_dry_run_without_a_ledger_creates_none(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-1", "answer", "feature_1.py")))
    result = oxi("tick", "--dry-run", cwd=repo.root)
    assert result.returncode == 0, result.stderr
    assert "dispatch  T1-1" in result.stdout
    assert not (repo.root / ".oxi").exists()


def test_two_ticks_at_once_never_dispatch_the_same_task(repo_factory) -> None:
    items = [(f"T1-{n}", f"note {n}", f"notes/T1-{n}.txt") for n in range(5, 11)]
    repo = repo_factory(roadmap(*items), critic=False,
                        engine={"max_concurrent": 6}, agent_env={"AGENT_SLEEP": "0.5"})
    procs = [subprocess.Popen([sys.executable, "-m", "oxi_core", "tick", "--json"],
                              cwd=repo.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    engine = Engine(load(repo))
    claims = [e.task_id for e in engine.ledger.events(types=[ev.TASK_CLAIMED])]
    # Both processes raced for all six tasks; the conditional UPDATE gave each to one of them.
    assert sorted(claims) == sorted(f"T1-{n}" for n in range(5, 11))
    assert all(t.attempts == 1 for t in engine.ledger.tasks())


def test_breaking_the_separator_of_an_item_in_review_keeps_its_status(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "notes", "left for a person to review")),
                        critic=False)
    engine = Engine(load(repo))
    tick(engine)
    assert engine.ledger.task("T1-5").status == TaskStatus.IN_REVIEW  # type: ignore[union-attr]
    (repo.root / "roadmap.md").write_text("# roadmap\n\n**T1-5 notes**\n_broken_\n")
    report = tick(engine)
    assert engine.ledger.task("T1-5").status == TaskStatus.IN_REVIEW  # type: ignore[union-attr]
    assert any("roadmap.md:3:" in w and "' · '" in w for w in report.warnings)
    assert engine.ledger.events(types=[ev.ROADMAP_WARNING])


def test_an_unreadable_roadmap_closes_nothing(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False)
    engine = Engine(load(repo))
    tick(engine)
    (repo.root / "roadmap.md").write_bytes(b"\xff\xfe not utf-8")
    report = tick(engine)
    assert engine.ledger.task("T1-5").status == TaskStatus.IN_REVIEW  # type: ignore[union-attr]
    assert any("unreadable" in w for w in report.warnings)
    assert engine.ledger.events(types=[ev.ROADMAP_UNREADABLE])


# -- hostile names --------------------------------------------------------------------------

@pytest.mark.parametrize("title", ["../../x", "a/b", "..", "-rf /", "ünïcødé/../../etc"])
def test_titles_never_leave_the_branch_namespace(title: str) -> None:
    branch = worktrees.branch_name("T1-1", title)
    assert branch.startswith("oxi/T1-1-")
    assert ".." not in branch and branch.count("/") == 1 and " " not in branch


def test_hostile_titles_stay_under_the_worktrees_folder(repo_factory, tmp_path: Path) -> None:
    repo = repo_factory(roadmap(("T1-5", "../../x", "escape"), ("T1-6", "a/b", "slash")),
                        critic=False, engine={"max_concurrent": 2})
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    engine = Engine(load(repo))
    tick(engine)
    assert {t.status for t in engine.ledger.tasks()} == {TaskStatus.IN_REVIEW}
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    branches = repo.git("ls-remote", "--heads", "origin")
    assert "oxi/T1-5-x" in branches and "oxi/T1-6-a-b" in branches


def test_task_ids_that_are_not_ids_are_refused_as_paths() -> None:
    paths = RepoPaths.under(Path("/tmp/nowhere"))
    for bad in ("../T1-1", "T1-1/..", "x"):
        with pytest.raises(WorktreeError):
            worktrees.worktree_path(paths, bad)


def test_a_planted_symlink_is_refused_at_creation_and_removal(repo_factory, tmp_path: Path) -> None:
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False)
    config = load(repo)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    config.paths.worktrees_dir.mkdir(parents=True)
    (config.paths.worktrees_dir / "T1-5").symlink_to(outside)
    with pytest.raises(WorktreeError, match="symlink"):
        worktrees.ensure_worktree(config.paths, "T1-5", "oxi/T1-5-notes",
                                  base_ref="origin/main", remote="origin")
    with pytest.raises(WorktreeError, match="symlink"):
        worktrees.remove_worktree(config.paths, config.paths.worktrees_dir / "T1-5",
                                  branch="oxi/T1-5-notes", remote="origin", force=True)
    engine = Engine(config)
    tick(engine)  # the sweep and the dispatch both meet the symlink
    assert (outside / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status == TaskStatus.RETRYING
    assert "symlink" in (task.last_error or "")


def test_a_symlinked_worktrees_folder_is_refused(repo_factory, tmp_path: Path) -> None:
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False)
    config = load(repo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config.paths.state_dir.mkdir(parents=True)
    config.paths.worktrees_dir.symlink_to(elsewhere)
    with pytest.raises(WorktreeError, match="symlink"):
        worktrees.ensure_worktree(config.paths, "T1-5", "oxi/T1-5-notes",
                                  base_ref="origin/main", remote="origin")
    assert list(elsewhere.iterdir()) == []


# -- crashes and retries ----------------------------------------------------------------------

def test_killed_right_after_worktree_add_the_next_attempt_succeeds(repo_factory) -> None:
    hook = '[worktree.hooks]\nafter_create = { argv = ["sh", "-c", "kill -9 $PPID"] }\n'
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False, extra_toml=hook)
    crashed = oxi("tick", cwd=repo.root)
    assert crashed.returncode == -9
    assert (repo.root / ".oxi" / "worktrees" / "T1-5").is_dir()
    assert "oxi/T1-5-notes" in repo.git("branch", "--list")
    config_text = repo.config.read_text().replace(hook, "")
    repo.config.write_text(config_text)
    again = oxi("tick", "--json", cwd=repo.root)
    assert again.returncode == 0, again.stderr
    engine = Engine(load(repo))
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status == TaskStatus.IN_REVIEW
    types = [e.type for e in engine.ledger.events(task_id="T1-5")]
    assert ev.ZOMBIE_REAPED in types and types.count(ev.TASK_CLAIMED) == 2


def test_after_create_failure_removes_the_worktree_and_requeues(repo_factory) -> None:
    hook = '[worktree.hooks]\nafter_create = { argv = ["false"] }\n'
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False, extra_toml=hook)
    engine = Engine(load(repo))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status == TaskStatus.PLANNED
    assert "after_create hook failed" in (task.last_error or "")
    assert not (repo.root / ".oxi" / "worktrees" / "T1-5").exists()


def test_a_hook_runs_for_the_engines_hook_timeout_then_its_group_is_killed(
    repo_factory, tmp_path: Path
) -> None:
    # `[engine] hook_timeout_s` is the timeout of every hook that sets none of its own.
    child = tmp_path / "child.pid"
    sleeper = ["sh", "-c", f"sleep 30 & echo $! > {child}; echo preparing; wait"]
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False,
                        engine={"hook_timeout_s": 2},
                        extra_toml=f"[worktree.hooks]\nafter_create = {{ argv = "
                                   f"{json.dumps(sleeper)} }}\n")
    engine = Engine(load(repo))
    tick(engine)

    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.PLANNED  # requeued, never run
    assert task.last_error is not None and task.last_error.startswith(
        "after_create hook timed out after 2 s ([engine] hook_timeout_s)"), task.last_error
    (failed,) = engine.ledger.events(types=[ev.WORKTREE_HOOK_FAILED])
    assert failed.payload["hook"] == "after_create"
    assert failed.payload["timed_out"] is True and failed.payload["timeout_s"] == 2
    assert "preparing" in failed.payload["output"]
    assert engine.ledger.events(types=[ev.WORKER_STARTED]) == []
    pid = int(child.read_text())  # the hook's own child went with its group
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_a_hooks_own_timeout_wins_over_the_engines(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False,
                        engine={"hook_timeout_s": 600},
                        extra_toml='[worktree.hooks]\nbefore_run = { argv = ["sleep", "30"], '
                                   'timeout_s = 1 }\n')
    engine = Engine(load(repo))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.last_error is not None
    assert task.last_error.startswith(
        "before_run hook timed out after 1 s ([worktree.hooks.before_run] timeout_s)")


def test_after_run_failure_is_only_an_event(repo_factory) -> None:
    hook = '[worktree.hooks]\nafter_run = { argv = ["false"] }\n'
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False, extra_toml=hook)
    engine = Engine(load(repo))
    tick(engine)
    assert engine.ledger.task("T1-5").status == TaskStatus.IN_REVIEW  # type: ignore[union-attr]
    (event,) = engine.ledger.events(types=[ev.WORKTREE_HOOK_FAILED])
    assert event.payload["hook"] == "after_run"


def test_a_hook_or_a_check_that_leaves_a_background_process_neither_waits_for_it_nor_leaks_it(
    repo_factory, tmp_path: Path
) -> None:
    # `setsid cmd &` leaves the command's process group, and the background process holds the
    # command's output open: once the command exits, it is stopped, not waited for.
    pids = tmp_path / "pids"
    pids.mkdir()

    def leaving(name: str) -> list[str]:
        return ["sh", "-c", f"setsid sleep 305 & echo $! > {pids / name}; echo started"]

    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False, extra_toml=(
        "[worktree.hooks]\n"
        f"after_create = {{ argv = {json.dumps(leaving('hook'))}, timeout_s = 120 }}\n"
        "[judges.critic]\ntype = \"command\"\n"
        f"kwargs = {{ commands = [{json.dumps(leaving('check'))}], timeout_s = 120 }}\n"))
    engine = Engine(load(repo))
    started = time.monotonic()
    tick(engine)
    assert time.monotonic() - started < 60  # neither the hook nor the check was waited out
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.MERGED, task.last_error
    for name in ("hook", "check"):
        pid = int((pids / name).read_text())
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", name


def test_backoff_grows_exponentially_caps_and_honours_retry_after() -> None:
    policy = Policy()
    assert [backoff_delay_s(a, policy) for a in (1, 2, 3, 4, 5, 6, 7)] == [
        10, 20, 40, 80, 160, 300, 300]
    assert backoff_delay_s(1, policy, retry_after_s=45) == 45
    assert backoff_delay_s(3, policy, retry_after_s=5) == 40


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_retry_delays_grow_survive_a_restart_and_skip_removed_items(repo_factory) -> None:
    items = roadmap(("T1-2", "flaky provider", "always overloaded"))
    repo = repo_factory(items, critic=False,
                        engine={"retry_base_s": 10.0, "retry_max_s": 300.0, "max_attempts": 5})
    clock = FakeClock()
    engine = Engine(load(repo), clock=clock)
    tick(engine)
    first = engine.ledger.task("T1-2")
    assert first is not None and first.status == TaskStatus.RETRYING
    assert first.retry_due_at == isoformat(clock.now + timedelta(seconds=10))
    clock.advance(9)
    assert tick(engine).dispatched == []
    clock.advance(1)
    assert tick(engine).dispatched == ["T1-2"]
    second = engine.ledger.task("T1-2")
    assert second is not None
    assert second.retry_due_at == isoformat(clock.now + timedelta(seconds=20))

    restarted = Engine(load(repo), clock=clock)  # a new process: only the ledger remembers
    clock.advance(19)
    assert tick(restarted).dispatched == []
    clock.advance(1)
    assert tick(restarted).dispatched == ["T1-2"]
    assert restarted.ledger.task("T1-2").retry_due_at == (  # type: ignore[union-attr]
        isoformat(clock.now + timedelta(seconds=40)))

    (repo.root / "roadmap.md").write_text(roadmap(("T1-5", "other", "x")))
    clock.advance(40)
    report = tick(restarted)
    assert "T1-2" not in report.dispatched
    assert restarted.ledger.task("T1-2").status == TaskStatus.ABANDONED  # type: ignore[union-attr]
    claims = restarted.ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-2")
    assert len(claims) == 3


def test_scripted_agent_path_is_what_the_fixture_uses() -> None:
    assert Path(SCRIPTED_AGENT[1]).is_file()
