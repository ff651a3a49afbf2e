"""T1-20: the local forge merges with `git merge-tree --write-tree`, which needs git 2.38. With
an older git first on PATH, `oxi doctor` and `oxi config check` say which git, what is needed
and how to upgrade, and a tick refuses the merge it could not finish, losing nothing."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oxi_core import git_version
from oxi_core.testing import repos
from oxi_core.testing.repos import IDENTITY, exec_agent_toml, make_repo, run_git
from tests.conftest import roadmap

OXI = str(Path(sys.executable).with_name("oxi"))

# A git that says it is 2.30 and does everything else as the real one: what an older
# distribution's git looks like to oxi. Every command it is given is logged.
SHIM = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$1" = "--version" ]; then
    echo "git version 2.30.0"
    exit 0
fi
exec {git} "$@"
"""


def old_git(folder: Path) -> Path:
    """A folder holding the 2.30 `git`, to put first on PATH."""
    real = shutil.which("git")
    assert real is not None
    shim = folder / "old-git" / "git"
    shim.parent.mkdir(parents=True)
    shim.write_text(SHIM.format(git=real, log=folder / "git-commands.log"))
    shim.chmod(0o755)
    return shim.parent


def oxi(cwd: Path, *argv: str, path_first: Path | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    result = subprocess.run([OXI, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def git_findings(cwd: Path, *command: str, path_first: Path | None = None) -> tuple[
        int, list[dict[str, Any]]]:
    done = oxi(cwd, *command, "--json", path_first=path_first, check=False)
    report = json.loads(done.stdout)
    found = report.get("findings", report.get("result", {}).get("findings", []))
    return done.returncode, [f for f in found if f["check"] == "git"]


def test_doctor_and_config_check_name_an_old_git_what_is_needed_and_how_to_upgrade(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "one", "a"))})
    repo.write("oxi.toml", exec_agent_toml(["true"]))  # the local forge
    shim = old_git(tmp_path)
    for command in (("doctor",), ("config", "check")):
        code, [finding] = git_findings(repo.root, *command, path_first=shim)
        assert code == 1
        assert finding["severity"] == "error"
        assert finding["problem"] == (
            f"git 2.30.0 ({shim / 'git'}) is too old for the local forge: it merges with "
            "`git merge-tree --write-tree`, which needs git 2.38 or newer")
        assert finding["fix"].startswith("install git 2.38 or newer and put it first on PATH")
        # The text a person reads says the same.
        text = oxi(repo.root, *command, path_first=shim, check=False).stdout
        assert "git 2.30.0" in text and "2.38 or newer" in text
    # The git this machine has is new enough: nothing to say.
    assert git_findings(repo.root, "doctor")[1] == []


def _diverging_task(tmp_path: Path) -> tuple[repos.TestRepo, Path]:
    """One task whose agent changes a.txt while someone else pushes b.txt to main: its branch
    is no longer one commit on the base's tip, so merging it needs `merge-tree`."""
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "one", "a"))})
    other = tmp_path / "other"
    run_git(["clone", "-q", str(repo.origin), str(other)], tmp_path)
    agent = ('echo change > a.txt && cd "$OTHER" && echo other > b.txt && git add b.txt '
             '&& git commit -qm "someone else" && git push -q origin main')
    env = {"OTHER": str(other), **IDENTITY}
    repo.write("oxi.toml", exec_agent_toml(["sh", "-c", agent], critic=[["true"]],
                                           agent_env=env))
    return repo, other


def _ledger(repo: repos.TestRepo, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(repo.root / ".oxi" / "oxi.db")
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def test_a_tick_refuses_a_merge_an_old_git_cannot_finish_and_loses_nothing(
    tmp_path: Path,
) -> None:
    repo, _other = _diverging_task(tmp_path)
    shim = old_git(tmp_path)
    oxi(repo.root, "tick", path_first=shim)

    # Not merged, nothing failed: in review, its pull request open and armed, its branch on
    # the origin, and the engine paused saying what to fix.
    assert _ledger(repo, "SELECT status FROM tasks") == [("in_review",)]
    [(state, armed, branch)] = _ledger(repo, "SELECT state, auto_merge_armed, branch "
                                             "FROM pull_requests")
    assert (state, armed) == ("open", 1)
    run_git(["rev-parse", "--verify", f"refs/heads/{branch}"], repo.origin)
    assert repo.origin_file("a.txt") is None and repo.origin_file("b.txt") == "other\n"
    [(payload,)] = _ledger(repo, "SELECT payload FROM events WHERE type = 'engine_paused'")
    reason = json.loads(payload)["reason"]
    assert "git 2.30.0" in reason and "needs git 2.38 or newer" in reason
    assert "install git 2.38 or newer" in reason
    ran = (tmp_path / "git-commands.log").read_text().splitlines()
    assert not [line for line in ran if line.startswith("merge-tree")]

    # With a git that can: resumed, the next tick merges what was approved.
    oxi(repo.root, "resume")
    oxi(repo.root, "tick")
    assert _ledger(repo, "SELECT status FROM tasks") == [("merged",)]
    assert repo.origin_file("a.txt") == "change\n" and repo.origin_file("b.txt") == "other\n"


def test_the_version_is_read_once_per_git_binary(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    shim = old_git(tmp_path)
    log = tmp_path / "git-commands.log"

    def asked() -> int:
        return log.read_text().splitlines().count("--version")

    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    state = tmp_path / "state"
    state.mkdir()

    def new_process() -> git_version.InstalledGit | None:
        monkeypatch.setattr(git_version, "_read", {})
        return git_version.installed_git(state)

    found = new_process()
    assert found is not None and found.version == (2, 30, 0)
    assert new_process() == found and git_version.installed_git(state) == found
    assert asked() == 1  # later processes read the state file
    stat = (shim / "git").stat()
    os.utime(shim / "git", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # git upgraded
    assert new_process() == found
    assert asked() == 2
