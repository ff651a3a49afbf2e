"""T2-45: `oxi saturate` as a daemon: SIGTERM waits for workers, one instance per repository,
config reloads that keep the last good config, and the pause killswitch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil

from oxi_core.engine.reaper import this_host
from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing.repos import exec_agent_toml
from tests.conftest import CHECK_ANSWERS, SCRIPTED_AGENT, roadmap
from tests.unattended.support import (
    alive,
    assert_ledger_consistent,
    events_of,
    ledger_of,
    run_oxi,
    wait_for,
)

FAST = {"retry_base_s": 0.05, "retry_max_s": 0.2}


def statuses(repo) -> dict[str, str]:
    with ledger_of(repo) as ledger:
        return {t.id: str(t.status) for t in ledger.tasks()}


def test_sigterm_waits_for_both_workers_records_them_and_exits_zero(repo_factory, oxi) -> None:
    repo = repo_factory(
        roadmap(("T1-5", "first", "notes"), ("T1-6", "second", "notes"),
                ("T1-7", "third", "notes")),
        agent_env={"AGENT_SLEEP": "2"})
    daemon = oxi.start(["saturate", "-j", "2", "--interval", "0.2"], repo)
    started = wait_for(lambda: len(events_of(repo, ev.WORKER_STARTED)) == 2 and
                       events_of(repo, ev.WORKER_STARTED), what="two agents running")
    pids = [e.payload["pid"] for e in started]
    assert all(alive(pid) for pid in pids)
    daemon.signal(signal.SIGTERM)
    time.sleep(0.5)
    # Still running: saturate never kills its workers; it waits for them.
    assert daemon.proc.poll() is None and all(alive(pid) for pid in pids)
    assert daemon.wait(timeout=60) == 0, daemon.stderr
    assert not (repo.root / ".oxi" / "saturate.pid").exists()
    assert "stopped (SIGTERM)" in daemon.stdout

    with ledger_of(repo) as ledger:
        tasks = {t.id: t for t in ledger.tasks()}
        ran = {e.task_id for e in started}
        assert ran == {"T1-5", "T1-6"}
        for task_id in ran:
            assert tasks[task_id].status is TaskStatus.MERGED
            assert ledger.events(types=[ev.DISPATCH_RESULT], task_id=task_id)
        # Nothing new was dispatched once SIGTERM arrived.
        assert tasks["T1-7"].status is TaskStatus.PLANNED
        assert ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-7") == []
        (stopping,) = ledger.events(types=[ev.SATURATE_STOPPING])
        assert stopping.payload == {"reason": "SIGTERM", "waiting_for": ["T1-5", "T1-6"]}
        (stopped,) = ledger.events(types=[ev.SATURATE_STOPPED])
        assert stopped.payload["waited_for"] == ["T1-5", "T1-6"]
        results = ledger.events(types=[ev.DISPATCH_RESULT])
        assert all(r.id < stopped.id for r in results)
        assert_ledger_consistent(ledger)


def test_a_second_saturate_refuses_with_one_line_naming_the_pid(repo_factory, oxi) -> None:
    repo = repo_factory(roadmap(("T1-5", "first", "notes")), agent_env={"AGENT_SLEEP": "0.2"})
    first = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    pid_file = repo.root / ".oxi" / "saturate.pid"
    wait_for(lambda: events_of(repo, ev.SATURATE_STARTED), what="saturate to start")
    recorded = json.loads(pid_file.read_text())
    assert recorded["pid"] == first.pid
    assert recorded["started_at_epoch"] == psutil.Process(first.pid).create_time()

    for argv in (["saturate", "-j", "1"], ["v3", "saturate", "-j", "1"]):
        second = run_oxi(argv, cwd=repo.root, timeout=30)
        assert second.returncode != 0
        assert second.stdout == ""
        lines = second.stderr.splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("oxi: error: oxi saturate is already running")
        assert f"pid {first.pid}" in lines[0]
        assert f"kill -TERM {first.pid}" in lines[0]
    assert json.loads(pid_file.read_text()) == recorded  # the live daemon's file is untouched
    assert len(events_of(repo, ev.SATURATE_STARTED)) == 1

    first.signal(signal.SIGTERM)
    assert first.wait() == 0, first.stderr
    assert not pid_file.exists()


def test_a_stale_pid_file_is_taken_over(repo_factory, oxi) -> None:
    repo = repo_factory(roadmap(("T1-5", "first", "notes")), agent_env={"AGENT_SLEEP": "0.2"})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    pid_file = repo.root / ".oxi" / "saturate.pid"
    pid_file.parent.mkdir()
    stale = {"pid": gone.pid, "host": this_host(), "started_at_epoch": 1.5,
             "started_at": "2026-01-01T00:00:00+00:00"}
    pid_file.write_text(json.dumps(stale))
    daemon = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    (started,) = wait_for(lambda: events_of(repo, ev.SATURATE_STARTED), what="saturate")
    assert started.payload["took_over_stale_pid_file"] == stale
    assert json.loads(pid_file.read_text())["pid"] == daemon.pid
    wait_for(lambda: statuses(repo).get("T1-5") == "merged", what="the task to merge")
    daemon.signal(signal.SIGINT)
    assert daemon.wait() == 0, daemon.stderr
    assert not pid_file.exists()


def test_a_pid_file_naming_a_live_process_that_is_not_saturate_is_refused(
    repo_factory, oxi
) -> None:
    """The pid and its start time both match a live process: refused even without the lock
    (a daemon on a filesystem where the lock file was lost, say)."""
    repo = repo_factory(roadmap(("T1-5", "first", "notes")))
    me = psutil.Process()
    pid_file = repo.root / ".oxi" / "saturate.pid"
    pid_file.parent.mkdir()
    pid_file.write_text(json.dumps({"pid": me.pid, "host": this_host(),
                                    "started_at_epoch": me.create_time(),
                                    "started_at": "then"}))
    refused = run_oxi(["saturate", "-j", "1"], cwd=repo.root, timeout=30)
    assert refused.returncode != 0
    assert f"pid {me.pid}" in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_a_broken_config_keeps_the_last_good_one_until_a_good_edit(repo_factory, oxi) -> None:
    repo = repo_factory(roadmap(("T1-5", "first", "notes")), agent_env={"AGENT_SLEEP": "0.1"})
    daemon = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    wait_for(lambda: statuses(repo).get("T1-5") == "merged", what="the first task to merge")
    good = repo.config.read_text()

    # A bad edit: recorded once, however many ticks pass.
    repo.config.write_text(good + "\n[engine\nbroken = \n")
    wait_for(lambda: events_of(repo, ev.CONFIG_RELOAD_FAILED), what="config_reload_failed")
    ticks_before = len(events_of(repo))
    # It keeps running on the last good config: a new item is dispatched and merges.
    (repo.root / "roadmap.md").write_text(
        roadmap(("T1-5", "first", "notes"), ("T1-6", "second", "notes")))
    wait_for(lambda: statuses(repo).get("T1-6") == "merged", what="T1-6 to merge")
    time.sleep(1.0)  # several more ticks on the same bad file
    failed = events_of(repo, ev.CONFIG_RELOAD_FAILED)
    assert len(failed) == 1
    assert "oxi.toml" in failed[0].payload["error"]
    assert len(events_of(repo)) > ticks_before

    # A second, different bad edit is a second event; a good edit is picked up.
    time.sleep(0.05)
    repo.config.write_text(good + "\n[nonsense]\nx = 1\n")
    wait_for(lambda: len(events_of(repo, ev.CONFIG_RELOAD_FAILED)) == 2, what="second failure")
    assert "nonsense" in events_of(repo, ev.CONFIG_RELOAD_FAILED)[1].payload["error"]
    repo.config.write_text(exec_agent_toml(
        SCRIPTED_AGENT, critic=CHECK_ANSWERS, engine=FAST,
        agent_env={"AGENT_SLEEP": "0.1", "AGENT_TARGET": "reloaded.txt"}))
    wait_for(lambda: events_of(repo, ev.CONFIG_RELOADED), what="config_reloaded")
    (repo.root / "roadmap.md").write_text(roadmap(
        ("T1-5", "first", "notes"), ("T1-6", "second", "notes"), ("T1-7", "third", "notes")))
    wait_for(lambda: statuses(repo).get("T1-7") == "merged", what="T1-7 to merge")
    assert repo.origin_file("reloaded.txt") == "T1-7 was here\n"  # the new config's agent env
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.stderr
    assert len(events_of(repo, ev.CONFIG_RELOADED)) == 1
    assert len(events_of(repo, ev.CONFIG_RELOAD_FAILED)) == 2


def test_pause_and_resume_are_respected_by_saturate_and_tick(repo_factory, oxi) -> None:
    repo = repo_factory(roadmap(("T1-5", "first", "notes")), agent_env={"AGENT_SLEEP": "0.1"})
    assert run_oxi(["pause"], cwd=repo.root).returncode == 0
    ticked = run_oxi(["tick", "--json"], cwd=repo.root)
    assert ticked.returncode == 0, ticked.stderr
    report = json.loads(ticked.stdout)
    assert report["tick"]["paused"] is True and report["tick"]["dispatched"] == []
    assert report["status"]["paused"] is True

    daemon = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    wait_for(lambda: events_of(repo, ev.SATURATE_STARTED), what="saturate")
    time.sleep(1.0)  # ~5 ticks, all paused
    assert events_of(repo, ev.TASK_CLAIMED) == []
    assert run_oxi(["resume"], cwd=repo.root).returncode == 0
    wait_for(lambda: statuses(repo).get("T1-5") == "merged", what="the task to merge")

    assert run_oxi(["pause"], cwd=repo.root).returncode == 0
    paused_at = len(events_of(repo))
    (repo.root / "roadmap.md").write_text(
        roadmap(("T1-5", "first", "notes"), ("T1-6", "second", "notes")))
    time.sleep(1.0)
    assert statuses(repo)["T1-6"] == "planned"  # ingested, never dispatched
    assert [e.type for e in events_of(repo)[paused_at:]] == [ev.TASK_INGESTED]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.stderr


def test_a_saturate_that_paused_itself_dispatches_again_after_oxi_resume(
    repo_factory, oxi, tmp_path
) -> None:
    # The agent's key is refused (an exec agent exiting 77) until the operator fixes it.
    refused = tmp_path / "key-refused"
    refused.write_text("")
    repo = repo_factory(roadmap(("T1-5", "first", "notes"), ("T1-6", "second", "notes")),
                        agent_env={"AGENT_REFUSED_WHILE": str(refused)})
    daemon = oxi.start(["saturate", "-j", "1", "--interval", "0.2"], repo)
    (paused,) = wait_for(lambda: events_of(repo, ev.ENGINE_PAUSED), timeout=90,
                         what="saturate to pause itself on the refused key")
    assert paused.payload["by"] == "engine" and "credentials" in paused.payload["reason"]
    assert statuses(repo) == {"T1-5": "planned", "T1-6": "planned"}

    refused.unlink()  # the operator fixes the key, then resumes from another process
    resumed = run_oxi(["resume"], cwd=repo.root)

    assert resumed.returncode == 0, resumed.stderr
    assert ev.ENGINE_RESUMED in resumed.stderr  # the log notifier heard of it
    wait_for(lambda: statuses(repo) == {"T1-5": "merged", "T1-6": "merged"}, timeout=120,
             what="both tasks to merge without restarting saturate")
    assert daemon.proc.poll() is None
    assert len(events_of(repo, ev.SATURATE_STARTED)) == 1
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.stderr

