"""The exec agent's prompt folders (`oxi-prompt-*` in the temporary folder) never pile up: a run
removes its own, and one a supervisor killed with SIGKILL could not remove goes with the next
tick. Each test counts them in a temporary folder of its own (TMPDIR), before and after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from oxi_core.builtins.prompt_files import PREFIX, prompt_file, sweep_orphans
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing.repos import exec_agent_toml
from tests.conftest import CHECK_ANSWERS, SCRIPTED_AGENT, roadmap
from tests.unattended.support import alive, events_of, ledger_of, run_oxi, wait_for


def prompt_folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob(f"{PREFIX}*"))


def test_a_tick_leaves_no_prompt_folder_behind(repo_factory, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False,
                        agent_env={"PROMPT_LOG": str(tmp_path)})
    assert prompt_folders(tmp) == []

    result = run_oxi(["tick"], repo.root, env={"TMPDIR": str(tmp)})

    assert result.returncode == 0, result.stderr
    with ledger_of(repo) as ledger:
        task = ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW, task
    assert (tmp_path / "T1-5.log").exists()  # the agent read its prompt file
    assert prompt_folders(tmp) == []


def test_a_killed_supervisors_prompt_folder_goes_with_the_next_tick(repo_factory, oxi,
                                                                    tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    repo = repo_factory(roadmap(("T1-5", "a long run", "n")),
                        agent_env={"AGENT_SLEEP": "60", "AGENT_PID_DIR": str(oxi.pid_dir)})
    first = oxi.start(["tick"], repo, env={"TMPDIR": str(tmp)})
    (started,) = wait_for(lambda: events_of(repo, ev.WORKER_STARTED), timeout=60,
                          what="the agent to start")
    [left] = prompt_folders(tmp)
    assert (left / "prompt.md").read_text().startswith("You are implementing")

    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    wait_for(lambda: not alive(started.payload["pid"]), timeout=30,
             what="the agent to die with its supervisor")
    assert prompt_folders(tmp) == [left]  # nobody could clean it

    repo.config.write_text(exec_agent_toml(
        SCRIPTED_AGENT, critic=CHECK_ANSWERS, engine={"retry_base_s": 0.05, "retry_max_s": 0.2}))
    second = run_oxi(["tick"], repo.root, env={"TMPDIR": str(tmp)})

    assert second.returncode == 0, second.stderr
    assert events_of(repo, ev.ZOMBIE_REAPED)  # the task was taken back and run again
    assert len(events_of(repo, ev.DISPATCH_RESULT)) == 1
    assert prompt_folders(tmp) == []


def test_only_folders_of_processes_that_are_gone_are_swept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f"{PREFIX}{gone.stdout.strip()}-{int(time.time() * 1000)}-abcd"
    reused = tmp_path / f"{PREFIX}{os.getpid()}-1000-abcd"  # this pid, another start time
    foreign = tmp_path / f"{PREFIX}q1w2e3r4"  # an older oxi's name: not judged
    for folder in (dead, reused, foreign):
        folder.mkdir()
        (folder / "prompt.md").write_text("p")

    with prompt_file("the prompt") as mine:  # a run sweeps first
        assert mine.read_text() == "the prompt"
        assert prompt_folders(tmp_path) == sorted([foreign, mine.parent])
        assert sweep_orphans(tmp_path) == []  # a live run's folder is never swept
    assert prompt_folders(tmp_path) == [foreign]
