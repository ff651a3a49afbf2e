"""`oxi status --json` while saturate runs: what is in flight, and what waits to retry."""

from __future__ import annotations

import signal
from datetime import datetime

from oxi_core.ledger import events as ev
from oxi_core.models import parse_ts
from tests.conftest import roadmap
from tests.unattended.support import events_of, ledger_of, status_json, wait_for


def test_status_shows_in_flight_and_retrying_work_while_saturate_runs(repo_factory, oxi) -> None:
    repo = repo_factory(
        roadmap(("T1-5", "thinks a while", "n"), ("T1-2", "flaky provider", "n")),
        engine={"retry_base_s": 120.0, "retry_max_s": 300.0},
        agent_env={"AGENT_SLEEPS": "T1-5=4", "AGENT_WRITE_FIRST": "1"})
    daemon = oxi.start(["saturate", "-j", "2", "--interval", "0.2"], repo)

    def ready() -> bool:
        with ledger_of(repo) as ledger:
            tasks = {t.id: t for t in ledger.tasks()}
        return bool(tasks.get("T1-5") and tasks["T1-5"].last_event
                    and tasks.get("T1-2") and tasks["T1-2"].status == "retrying")

    wait_for(ready, timeout=30, what="one agent running and one retry scheduled")
    status = status_json(repo)
    (started,) = events_of(repo, ev.WORKER_STARTED, task_id="T1-5")
    (claimed,) = events_of(repo, ev.TASK_CLAIMED, task_id="T1-5")

    (running,) = status["in_flight"]
    assert running["task"] == "T1-5"
    assert running["agent"] == "worker"
    assert running["host"] == started.payload["host"]
    assert running["pid"] == started.payload["pid"]
    assert running["supervisor_pid"] == daemon.pid
    assert running["started"] == claimed.ts
    assert running["attempt"] == 1
    assert running["last_event"] == "assistant"  # "wrote the work, now thinking"
    assert 0 <= running["last_event_age_s"] < 4
    assert running["turns"] == 1
    assert running["tokens"] == 0 and running["cost_usd"] == 0  # nothing reported yet

    (retry,) = status["retrying"]
    assert retry["task"] == "T1-2"
    assert retry["attempt"] == 1
    assert retry["last_error"].startswith("exited 75: provider overloaded")
    due = parse_ts(retry["due"])
    (scheduled,) = events_of(repo, ev.RETRY_SCHEDULED, task_id="T1-2")
    assert abs((due - parse_ts(scheduled.ts)).total_seconds() - 120) < 1
    assert isinstance(due, datetime)

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0, daemon.stderr
    after = status_json(repo)
    assert after["in_flight"] == []
    by_id = {t["id"]: t for t in after["tasks"]}
    assert by_id["T1-5"]["status"] == "merged"
    assert by_id["T1-5"]["cost_usd"] == 0.01
