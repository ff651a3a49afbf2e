"""T2-49: a delivery where the agent made no commit of its own runs no `git status`: `git add
-A` stages the work with the droppings excluded as git excludes ignored files (through
core.excludesFile: the user's own excludes, then the droppings), and the files are the index
entries that differ from those `git worktree add` wrote. Whatever that cannot settle goes the
way it went before (`git status`), and ends the same."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oxi_core.config import load_config
from oxi_core.engine.droppings import (
    EXCLUDES_FILE,
    dropping_root,
    excludes_file,
    ignore_patterns,
)
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing.repos import exec_agent_toml, make_repo, run_git
from tests.conftest import roadmap, tick

ITEM = ("T1-5", "notes", "n")
FILES = {"roadmap.md": roadmap(ITEM), "keep.txt": "k\n", "vendored/keep.pyc": "tracked\n",
         "old.txt": "o\n", ".gitignore": ".oxi/\n"}

# Logs the subcommand of every git it runs, then is the real one.
SHIM = """#!/bin/sh
for arg in "$@"; do
    case "$prev" in -c) prev=""; continue ;; esac
    case "$arg" in -c) prev="-c"; continue ;; -*) continue ;; esac
    echo "$arg" >> "{log}"
    break
done
exec {git} "$@"
"""


@pytest.fixture
def git_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The log every git started (through PATH) writes its subcommand to."""
    real = shutil.which("git")
    assert real is not None
    log = tmp_path / "git-commands.log"
    shim = tmp_path / "git-shim" / "git"
    shim.parent.mkdir()
    shim.write_text(SHIM.format(git=real, log=log))
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ.get('PATH', '')}")
    return log


def agent(body: str) -> list[str]:
    code = "import os, pathlib, subprocess\n" + textwrap.dedent(body)
    return [sys.executable, "-c", code]


def deliver(tmp_path: Path, body: str, log: Path | None = None,
            settings: tuple[tuple[str, str], ...] = (),
            files: dict[str, str] | None = None) -> tuple[Engine, Path, list[str]]:
    """One tick of an agent running ``body``: the engine, the origin, and the git
    subcommands the tick ran (when ``log`` is the git_commands log)."""
    repo = make_repo(tmp_path, {**FILES, **(files or {})})
    for key, value in settings:
        run_git(["config", key, value], repo.root)
    repo.write("oxi.toml", exec_agent_toml(agent(body), engine={"max_attempts": 1}))
    engine = Engine(load_config(repo.config))
    if log is not None:
        log.write_text("")
    tick(engine)
    return engine, repo.origin, log.read_text().split() if log is not None else []


def pushed_files(engine: Engine) -> list[str]:
    (pushed,) = engine.ledger.events(types=[ev.BRANCH_PUSHED], task_id="T1-5")
    return list(pushed.payload["files"])


def committed(origin: Path, engine: Engine) -> list[str]:
    (pushed,) = engine.ledger.events(types=[ev.BRANCH_PUSHED], task_id="T1-5")
    head = pushed.payload["head"]
    return run_git(["diff", "--name-only", "--no-renames", f"{head}^", head],
                   origin).splitlines()


WORK_AND_DROPPINGS = """
    pathlib.Path("work.txt").write_text("work")
    pathlib.Path("keep.txt").write_text("changed")
    pathlib.Path("vendored/keep.pyc").write_text("a tracked file is work, whatever its name")
    for folder in ("pkg/__pycache__", ".pytest_cache/v", "node_modules/x", "x.egg-info"):
        pathlib.Path(folder).mkdir(parents=True)
        pathlib.Path(folder, "f").write_text("dropping")
    pathlib.Path("pkg/__pycache__/m.cpython-312.pyc").write_text("bytecode")
    pathlib.Path("loose.pyc").write_text("bytecode")
    pathlib.Path(".coverage").write_text("data")
    pathlib.Path("debug.log").write_text("ignored by the user's own excludes")
    subprocess.run(["git", "mv", "old.txt", "renamed.txt"], check=True)
"""


def test_work_is_delivered_without_git_status_and_droppings_stay_out(
        tmp_path: Path, git_commands: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_home = tmp_path / "config-home"
    (config_home / "git").mkdir(parents=True)
    (config_home / "git" / "ignore").write_text("*.log\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    engine, origin, commands = deliver(tmp_path, WORK_AND_DROPPINGS, git_commands)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error
    assert pushed_files(engine) == committed(origin, engine) == [
        "keep.txt", "old.txt", "renamed.txt", "vendored/keep.pyc", "work.txt"]
    # (A first tick also reads the history and the configuration: not the delivery's.)
    assert "status" not in commands and "diff" not in commands, commands
    assert commands.count("add") == commands.count("commit") == 1, commands
    # The droppings did not keep the delivered worktree: git's check excluded them too.
    root = engine.config.paths.repo_root
    assert not (root / ".oxi" / "worktrees" / "T1-5").exists()
    assert engine.ledger.events(types=[ev.WORKTREE_REMOVED], task_id="T1-5")
    excludes = (root / ".oxi" / EXCLUDES_FILE).read_text()
    assert "*.log" in excludes and excludes.index("*.log") < excludes.index("__pycache__/")


@pytest.mark.parametrize("start", ["", "\ufeff"])  # git skips a byte-order mark
def test_a_configured_excludes_file_is_still_honoured(tmp_path: Path, git_commands: Path,
                                                      start: str) -> None:
    mine = tmp_path / "my-excludes"
    mine.write_bytes(f"{start}*.secret\n*.log\n".encode())
    engine, origin, commands = deliver(tmp_path, """
        pathlib.Path("work.txt").write_text("work")
        pathlib.Path("token.secret").write_text("kept out by the first line")
        pathlib.Path("x.log").write_text("kept out by the second")
    """, git_commands, settings=(("core.excludesFile", str(mine)),))
    assert pushed_files(engine) == committed(origin, engine) == ["work.txt"]
    assert "status" not in commands


def test_only_droppings_is_no_change_and_the_worktree_goes(tmp_path: Path,
                                                          git_commands: Path) -> None:
    engine, _origin, commands = deliver(tmp_path, """
        pathlib.Path("pkg/__pycache__").mkdir(parents=True)
        pathlib.Path("pkg/__pycache__/m.pyc").write_text("bytecode")
        pathlib.Path("keep.txt").write_text("k\\n")  # rewritten, the same
    """, git_commands)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.FAILED
    assert (task.last_error or "").startswith("no changes")
    root = engine.config.paths.repo_root
    assert not (root / ".oxi" / "worktrees" / "T1-5").exists()
    assert "status" not in commands and "commit" not in commands, commands


def test_work_the_agent_staged_itself_is_listed(tmp_path: Path) -> None:
    engine, origin, _commands = deliver(tmp_path, """
        pathlib.Path("staged.txt").write_text("s")
        subprocess.run(["git", "add", "staged.txt"], check=True)
        pathlib.Path("unstaged.txt").write_text("u")
        os.remove("keep.txt")
        subprocess.run(["git", "rm", "-q", "--cached", "vendored/keep.pyc"], check=True)
    """)
    # keep.pyc, untracked by the agent, is a dropping now: its removal from git is the work.
    assert pushed_files(engine) == committed(origin, engine) == [
        "keep.txt", "staged.txt", "unstaged.txt", "vendored/keep.pyc"]


@pytest.mark.parametrize("setting", [
    ("core.splitIndex", "true"),  # the index's entries in another file: not read
    ("core.excludesFile", "relative-excludes"),  # git reads it from where it runs
])
def test_what_the_index_cannot_settle_goes_through_git_status(
        tmp_path: Path, git_commands: Path, setting: tuple[str, str]) -> None:
    engine, origin, commands = deliver(tmp_path, WORK_AND_DROPPINGS, git_commands,
                                       settings=(setting,))
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error
    # (No excludes of the user's here: debug.log is work. A rename: both names, as `git
    # status` lists it too.)
    assert pushed_files(engine) == committed(origin, engine) == [
        "debug.log", "keep.txt", "old.txt", "renamed.txt", "vendored/keep.pyc", "work.txt"]
    assert "status" in commands


def test_the_ignore_patterns_say_what_dropping_root_says(tmp_path: Path) -> None:
    # git's reading of the patterns against the rule in Python, on paths of every kind.
    repo = make_repo(tmp_path, {"readme.md": "r\n"})
    paths = ["a/__pycache__/m.pyc", "m.pyc", "m.pyo", "x.pyc/inside.txt", ".coverage",
             ".coverage.host.1", "deep/.coverage", "coverage", ".venv/bin/python", ".venv",
             "n/node_modules/p/i.js", "pkg.egg-info/PKG-INFO", "egg-info/x", ".tox/py/x",
             "src/app.py", "htmlcov/index.html", ".mypy_cache/x", "a.pyc.txt"]
    for path in paths:
        target = repo.root / path
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x")
    patterns = tmp_path / "patterns"
    patterns.write_text("\n".join(ignore_patterns()) + "\n")
    listed = run_git(["-c", f"core.excludesFile={patterns}", "ls-files", "--others",
                      "--exclude-standard"], repo.root).splitlines()
    for path in paths:
        if (repo.root / path).is_file():
            assert (path not in listed) == (dropping_root(path) is not None), path


def test_a_gitignore_that_re_includes_files_lets_no_dropping_in(tmp_path: Path,
                                                               git_commands: Path) -> None:
    # An allow-list .gitignore outranks the excludes file: droppings are kept out by name.
    engine, origin, commands = deliver(tmp_path, """
        pathlib.Path("app.js").write_text("work")
        pathlib.Path("node_modules/lib").mkdir(parents=True)
        pathlib.Path("node_modules/lib/index.js").write_text("installed")
        pathlib.Path("pkg/__pycache__").mkdir(parents=True)
        pathlib.Path("pkg/__pycache__/m.js").write_text("not a real name, still a dropping")
    """, git_commands, files={".gitignore": "*\n!*/\n!*.js\n!*.md\n!.gitignore\n"})
    assert pushed_files(engine) == committed(origin, engine) == ["app.js"]
    # (Delivered without `git status`; removing the tree then looks, as the droppings are
    # not ignored there.)
    assert "status" not in commands[:commands.index("push")], commands


def test_uncommitted_work_in_a_submodule_keeps_the_worktree(tmp_path: Path) -> None:
    library = tmp_path / "library"
    run_git(["init", "-q", "-b", "main", str(library)], tmp_path)
    (library / "lib.txt").write_text("v1\n")
    run_git(["add", "lib.txt"], library)
    run_git(["-c", "user.name=a", "-c", "user.email=a@a", "commit", "-q", "-m", "v1"], library)
    (tmp_path / "main").mkdir()
    repo = make_repo(tmp_path / "main", FILES)
    run_git(["-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "sub"],
            repo.root)
    run_git(["-c", "user.name=a", "-c", "user.email=a@a", "commit", "-q", "-m", "sub"],
            repo.root)
    run_git(["push", "-q", "origin", "HEAD"], repo.root)
    repo.write("oxi.toml", exec_agent_toml(agent("""
        subprocess.run(["git", "-c", "protocol.file.allow=always", "submodule", "update",
                        "--init", "-q"], check=True)
        pathlib.Path("sub/lib.txt").write_text("edited, never committed")
    """), engine={"max_attempts": 1}))
    engine = Engine(load_config(repo.config))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.FAILED
    tree = repo.root / ".oxi" / "worktrees" / "T1-5"
    assert (tree / "sub" / "lib.txt").read_text() == "edited, never committed"
    assert engine.ledger.events(types=[ev.WORKTREE_KEPT], task_id="T1-5")


def test_a_long_running_engine_sees_the_excludes_setting_change(tmp_path: Path) -> None:
    # `oxi saturate` runs for days: a core.excludesFile set meanwhile holds for what follows.
    repo = make_repo(tmp_path, {**FILES, "roadmap.md": roadmap(ITEM, ("T1-6", "more", "m"))})
    repo.write("oxi.toml", exec_agent_toml(agent("""
        pathlib.Path(os.environ["OXI_TASK_ID"] + ".txt").write_text("work")
        pathlib.Path("token.secret").write_text("a secret")
    """), engine={"max_attempts": 1, "max_concurrent": 1}))
    engine = Engine(load_config(repo.config), capacity=lambda: 1)
    tick(engine)
    first = engine.ledger.events(types=[ev.BRANCH_PUSHED])
    assert [e.payload["files"] for e in first] == [["T1-5.txt", "token.secret"]]
    mine = tmp_path / "my-excludes"
    mine.write_text("*.secret\n")
    run_git(["config", "core.excludesFile", str(mine)], repo.root)
    tick(engine)
    second = engine.ledger.events(types=[ev.BRANCH_PUSHED], task_id="T1-6")
    assert [e.payload["files"] for e in second] == [["T1-6.txt"]]


def test_git_s_default_excludes_file_is_found_as_git_finds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    written = excludes_file(tmp_path, None)  # no HOME: git reads no file of the user's
    assert written is not None
    assert "no excludes file" in written.read_text()
    assert excludes_file(tmp_path, "~/mine") is None  # git cannot expand it either
    monkeypatch.setenv("HOME", "")
    written = excludes_file(tmp_path, None)
    assert written is not None and "/.config/git/ignore" in written.read_text().splitlines()[0]
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "config" / "git").mkdir(parents=True)
    (tmp_path / "config" / "git" / "ignore").write_text("*.tmp\n")
    written = excludes_file(tmp_path, None)
    assert written is not None and "*.tmp" in written.read_text().splitlines()
    assert excludes_file(tmp_path, "relative/excludes") is None  # read from where git runs


@pytest.mark.parametrize("settings", [(), (("core.splitIndex", "true"),)],
                         ids=["index", "git status"])
def test_a_file_name_that_is_not_utf8_is_delivered_on_both_paths(
        tmp_path: Path, git_commands: Path, settings: tuple[tuple[str, str], ...]) -> None:
    engine, origin, commands = deliver(tmp_path, """
        with open(os.fsencode("work.txt"), "w") as f:
            f.write("work")
        with open(b"caf\\xe9.txt", "w") as f:  # Latin-1, as an old tool may write it
            f.write("not UTF-8")
    """, git_commands, settings=settings)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW, task.last_error
    name = os.fsdecode(b"caf\xe9.txt")
    assert pushed_files(engine) == [name, "work.txt"]
    (pushed,) = engine.ledger.events(types=[ev.BRANCH_PUSHED], task_id="T1-5")
    head = pushed.payload["head"]
    listed = subprocess.run(["git", "diff", "--name-only", "-z", f"{head}^", head], cwd=origin,
                            capture_output=True, check=True)
    assert sorted(listed.stdout.split(b"\0")[:-1]) == [b"caf\xe9.txt", b"work.txt"]
    assert ("status" in commands) == bool(settings)
