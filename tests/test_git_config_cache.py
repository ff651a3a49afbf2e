"""What oxi reads of a repository's git configuration (identity, remote URLs) is kept in the
state folder between ticks, so a tick starts no `git config` unless something git would read
changed: a config file (the repository's, the global one, an included one), the environment,
the git binary. Conditional includes and credentials are never kept; a corrupt file is no
answer. Real git, real files; processes are counted through a `git` on PATH that logs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oxi_core import git_config
from oxi_core.testing import repos
from oxi_core.testing.repos import exec_agent_toml, make_repo, run_git
from tests.conftest import roadmap

# The repository, its state folder, a read as a new process would do it, the count of
# `git config` processes so far.
Setup = tuple[repos.TestRepo, Path, Callable[[], dict[str, str]], Callable[[], int]]
OXI = str(Path(sys.executable).with_name("oxi"))
REAL_GIT = shutil.which("git")  # before any test puts a logging one first on PATH
LOGGING_GIT = """#!/bin/sh
echo "$*" >> "{log}"
exec {git} "$@"
"""


def logging_git(folder: Path, log: Path) -> Path:
    """A folder holding a `git` that logs its arguments to ``log`` and runs the real one."""
    assert REAL_GIT is not None
    folder.mkdir(parents=True)
    (folder / "git").write_text(LOGGING_GIT.format(git=REAL_GIT, log=log))
    (folder / "git").chmod(0o755)
    return folder


def settled() -> None:
    """Waits until the files just written are older than the window in which their stat
    may not show a further change (the answer is not kept before)."""
    time.sleep(git_config.RACY_FINE_S + 0.05)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    """A repository with an identity, a HOME of its own, the logging git first on PATH;
    a function reading the configuration as a new process would, and one counting the
    `git config` processes so far."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in [name for name in os.environ if name.startswith("GIT_CONFIG")]:
        monkeypatch.delenv(name)
    repo = make_repo(tmp_path, {})
    repo.git("config", "user.name", "Ada")
    repo.git("config", "user.email", "ada@example.invalid")
    state = repo.root / ".oxi"
    state.mkdir()
    log = tmp_path / "git.log"
    log.write_text("")
    monkeypatch.setenv("PATH", f"{logging_git(tmp_path / 'bin', log)}{os.pathsep}"
                               f"{os.environ['PATH']}")
    settled()

    def read() -> dict[str, str]:
        return git_config.read_config(repo.root, state)

    def asked() -> int:
        return sum(line.startswith("config --list") for line in log.read_text().splitlines())

    return repo, state, read, asked


def test_the_second_read_is_the_state_file_private_and_holding_only_what_oxi_reads(
        setup: Setup) -> None:
    repo, state, read, asked = setup
    repo.git("config", "http.extraheader", "AUTHORIZATION: basic c2VjcmV0")
    repo.git("config", "core.editor", "vi")
    settled()
    first = read()
    assert first == {"user.name": "Ada", "user.email": "ada@example.invalid",
                     "remote.origin.url": str(repo.origin)}
    assert read() == first
    assert asked() == 1
    kept = state / git_config.CACHE_FILE
    assert kept.stat().st_mode & 0o777 == 0o600
    text = kept.read_text()
    assert "c2VjcmV0" not in text and "extraheader" not in text and "editor" not in text


def _edit_repo_config(repo: repos.TestRepo, _tmp: Path, _mp: pytest.MonkeyPatch) -> str:
    repo.git("config", "user.name", "Bea")
    return "Bea"


def _global_config_via_home(repo: repos.TestRepo, tmp: Path, mp: pytest.MonkeyPatch) -> str:
    repo.git("config", "--unset", "user.name")
    settled()
    assert git_config.read_config(repo.root, repo.root / ".oxi").get("user.name") is None
    (tmp / "home" / ".gitconfig").write_text("[user]\n\tname = Cy\n")
    return "Cy"


def _other_home(repo: repos.TestRepo, tmp: Path, mp: pytest.MonkeyPatch) -> str:
    repo.git("config", "--unset", "user.name")
    (tmp / "home" / ".gitconfig").write_text("[user]\n\tname = Cy\n")
    settled()
    assert git_config.read_config(repo.root, repo.root / ".oxi").get("user.name") == "Cy"
    (tmp / "home2").mkdir()
    (tmp / "home2" / ".gitconfig").write_text("[user]\n\tname = Di\n")
    mp.setenv("HOME", str(tmp / "home2"))
    return "Di"


def _included_file(repo: repos.TestRepo, tmp: Path, _mp: pytest.MonkeyPatch) -> str:
    included = tmp / "included.gitconfig"
    included.write_text("[user]\n\tname = Eve\n")
    repo.git("config", "include.path", "../../included.gitconfig")  # from .git/
    settled()
    assert git_config.read_config(repo.root, repo.root / ".oxi")["user.name"] == "Eve"
    included.write_text("[user]\n\tname = Fay\n")
    return "Fay"


def _included_file_created(repo: repos.TestRepo, tmp: Path, _mp: pytest.MonkeyPatch) -> str:
    repo.git("config", "include.path", "../../later.gitconfig")  # no such file yet
    settled()
    assert git_config.read_config(repo.root, repo.root / ".oxi")["user.name"] == "Ada"
    (tmp / "later.gitconfig").write_text("[user]\n\tname = Ida\n")
    return "Ida"


def _git_upgraded_in_place(_repo: repos.TestRepo, tmp: Path, _mp: pytest.MonkeyPatch) -> str:
    binary = tmp / "bin" / "git"
    stat = binary.stat()
    os.utime(binary, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    return "Ada"  # the same configuration, read again by the new git


def _config_from_environment(_repo: repos.TestRepo, _tmp: Path, mp: pytest.MonkeyPatch) -> str:
    mp.setenv("GIT_CONFIG_COUNT", "1")
    mp.setenv("GIT_CONFIG_KEY_0", "user.name")
    mp.setenv("GIT_CONFIG_VALUE_0", "Gus")
    return "Gus"


def _other_git_binary(_repo: repos.TestRepo, tmp: Path, mp: pytest.MonkeyPatch) -> str:
    other = logging_git(tmp / "other-bin", tmp / "git.log")
    mp.setenv("PATH", f"{other}{os.pathsep}{os.environ['PATH']}")
    return "Ada"  # the same configuration, read again by the other git


@pytest.mark.parametrize("change", [_edit_repo_config, _global_config_via_home, _other_home,
                                    _included_file, _included_file_created,
                                    _config_from_environment, _other_git_binary,
                                    _git_upgraded_in_place])
def test_each_change_git_would_see_makes_the_next_read_ask_git(
        setup: Setup,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        change: Callable[[repos.TestRepo, Path, pytest.MonkeyPatch], str]) -> None:
    repo, _state, read, asked = setup
    read()
    expected = change(repo, tmp_path, monkeypatch)
    settled()
    before = asked()
    assert read()["user.name"] == expected
    assert asked() == before + 1  # asked once, then kept again
    assert read()["user.name"] == expected and asked() == before + 1


def test_a_conditional_include_is_never_kept(
        setup: Setup,
        tmp_path: Path) -> None:
    repo, state, read, asked = setup
    (tmp_path / "on-main.gitconfig").write_text("[user]\n\tname = Hal\n")
    repo.git("config", "includeIf.onbranch:main.path", str(tmp_path / "on-main.gitconfig"))
    settled()
    assert read()["user.name"] == "Hal"
    repo.git("switch", "-q", "-c", "other")  # only HEAD changes: no config file does
    assert read()["user.name"] == "Ada"
    assert asked() == 2 and not (state / git_config.CACHE_FILE).exists()


def test_credentials_in_a_remote_url_are_never_kept(
        setup: Setup) -> None:
    repo, state, read, asked = setup
    url = "https://x-access-token:abc123@example.invalid/o/r.git"
    repo.git("remote", "set-url", "origin", url)
    settled()
    assert read()["remote.origin.url"] == url and read()["remote.origin.url"] == url
    assert asked() == 2 and not (state / git_config.CACHE_FILE).exists()


@pytest.mark.parametrize("content", ["{not json", "", '{"format": 1, "key": {"files": 3}}',
                                     '{"format": 0, "key": null, "value": {"user.name": "X"}}'])
def test_a_corrupt_or_foreign_state_file_is_ignored_and_replaced(
        setup: Setup,
        content: str) -> None:
    _repo, state, read, asked = setup
    (state / git_config.CACHE_FILE).write_text(content)
    assert read()["user.name"] == "Ada" and asked() == 1
    assert read()["user.name"] == "Ada" and asked() == 1  # kept anew


def test_the_second_tick_starts_no_git_config(tmp_path: Path) -> None:
    agent = [sys.executable, "-c",
             "import os, pathlib; pathlib.Path(os.environ['OXI_TASK_ID'] + '.txt')"
             ".write_text('x')"]
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "one", "a"), ("T1-2", "two", "b")),
                                "oxi.toml": exec_agent_toml(agent, critic=[["true"]],
                                                            engine={"max_concurrent": 1})})
    log = tmp_path / "git.log"
    env = {**os.environ,
           "PATH": f"{logging_git(tmp_path / 'bin', log)}{os.pathsep}{os.environ['PATH']}"}
    settled()
    ran: list[list[str]] = []
    for _ in range(2):
        log.write_text("")
        done = subprocess.run([OXI, "tick"], cwd=repo.root, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        ran.append(log.read_text().splitlines())
    assert [line for line in ran[0] if line.startswith("config")] == [
        "config --list --show-origin -z"]
    assert not [line for line in ran[1] if line.startswith("config")]
    assert run_git(["log", "--format=%s", "main"], repo.origin).count("\n") == 2  # both merged
