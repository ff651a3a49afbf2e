"""The killswitch always works: `oxi pause`, `resume` and `status` find the ledger without
building plugins and with a broken oxi.toml; outside a repository every command fails and
creates nothing; a repo_root that does not exist gets no ledger."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from oxi_core.ledger import events as ev
from tests.conftest import roadmap
from tests.unattended.support import events_of, run_oxi, wait_for

# Commands that act on a repository, with the arguments they need.
REPOSITORY_COMMANDS = [
    ["pause"], ["resume"], ["status"], ["status", "--json"], ["tick"], ["tick", "--dry-run"],
    ["ledger", "tail"], ["ledger", "path"], ["config", "check"], ["doctor"],
    ["roadmap", "list"], ["roadmap", "lint"], ["task", "release", "T1-1"], ["probe"],
    ["shadow", "report"], ["v3", "pause"], ["saturate", "-j", "1"],
]


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("argv", REPOSITORY_COMMANDS, ids=" ".join)
def test_outside_a_repository_every_command_fails_and_creates_nothing(
    tmp_path: Path, argv: list[str]
) -> None:
    folder = tmp_path / "not-a-repo"
    folder.mkdir()
    (tmp_path / ".git").mkdir()  # an empty .git folder above is not a repository
    (folder / "notes.txt").write_text("an operator in the wrong folder\n")
    before = tree(folder)

    result = run_oxi(argv, cwd=folder, timeout=60)

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("oxi: error: no oxi.toml in "), result.stderr
    assert "not inside a git repository" in result.stderr
    assert "paused" not in result.stdout
    assert tree(folder) == before


def test_pause_resume_and_status_work_with_a_broken_oxi_toml(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "first", "notes")))
    assert run_oxi(["tick"], cwd=repo.root).returncode == 0  # a ledger exists
    repo.config.write_text(repo.config.read_text() + "\n[engine\nmax_concurrent = 2\n")
    assert run_oxi(["config", "check"], cwd=repo.root).returncode == 2

    paused = run_oxi(["pause", "--reason", "config broken"], cwd=repo.root)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith("paused:")
    assert "oxi.toml cannot be loaded, so the ledger beside it is used" in paused.stderr
    assert "notifiers not reached" in paused.stderr  # they need the config; the pause did not

    status = run_oxi(["status", "--json"], cwd=repo.root)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["paused"] is True
    assert report["paused_reason"] == "config broken (by operator)"
    assert report["counts"] == {"merged": 1}

    resumed = run_oxi(["resume"], cwd=repo.root)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "resumed"
    assert [e.type for e in events_of(repo, ev.ENGINE_PAUSED, ev.ENGINE_RESUMED)] == [
        ev.ENGINE_PAUSED, ev.ENGINE_RESUMED]


def test_pause_with_a_broken_oxi_toml_stops_a_running_saturate(repo_factory, oxi,
                                                                 tmp_path) -> None:
    # T1-5 holds the one slot until the pause has landed, however long a loaded machine
    # takes to start the pause process.
    paused_file = tmp_path / "paused"
    repo = repo_factory(roadmap(("T1-5", "first", "notes"), ("T1-6", "second", "notes"),
                                ("T1-7", "third", "notes")),
                        agent_env={"AGENT_HOLD": f"T1-5={paused_file}"})
    daemon = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    wait_for(lambda: events_of(repo, ev.WORKER_STARTED), timeout=120,
             what="the first agent to start")
    repo.config.write_text("this is not TOML = = =\n")
    wait_for(lambda: events_of(repo, ev.CONFIG_RELOAD_FAILED), timeout=120,
             what="the reload to fail")

    paused = run_oxi(["pause"], cwd=repo.root)

    assert paused.returncode == 0, paused.stderr
    paused_file.touch()  # T1-5's agent finishes now
    wait_for(lambda: any(e.payload.get("to") == "merged"
                         for e in events_of(repo, ev.TASK_MERGED)), timeout=120,
             what="T1-5 to merge")
    time.sleep(1.5)  # several ticks of the daemon (interval 0.2 s), all paused
    assert [e.task_id for e in events_of(repo, ev.TASK_CLAIMED)] == ["T1-5"]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.stderr


def test_a_repo_root_that_does_not_exist_fails_and_gets_no_ledger(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "first", "notes")))
    missing = repo.root.parent / "moved-away"
    repo.config.write_text(repo.config.read_text().replace(
        'repo_root = "."', f'repo_root = "{missing}"'))

    for argv in (["config", "check"], ["tick"], ["pause"], ["status"], ["ledger", "tail"]):
        result = run_oxi(argv, cwd=repo.root)
        assert result.returncode != 0, (argv, result.stdout)
        assert "key 'kwargs.repo_root': the repository root" in result.stderr, result.stderr
        assert f"{missing} does not exist" in result.stderr
        assert not missing.exists()
    assert not (repo.root / ".oxi").exists()


def test_an_empty_oxi_toml_fails_config_check(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "first", "notes")))
    repo.config.write_text("# nothing here yet\n")

    result = run_oxi(["config", "check"], cwd=repo.root)

    assert result.returncode == 1, result.stdout
    assert f"error: {repo.config}: the file is empty: nothing is configured; fix: run " \
           "`oxi init --force`" in result.stdout
