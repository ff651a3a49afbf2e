"""T0-104: tasks that touch the same file wait their turn; none of their PRs conflicts."""

from __future__ import annotations

import signal
import sys

from oxi_core.ledger import events as ev
from oxi_core.tasks import TaskStatus
from oxi_core.testing.repos import exec_agent_toml
from tests.conftest import SCRIPTED_AGENT, roadmap
from tests.unattended.support import (
    assert_ledger_consistent,
    ledger_of,
    origin_lines,
    wait_for,
)

IDS = [f"T1-{n}" for n in range(5, 10)]


def test_five_tasks_on_one_file_merge_one_after_another_without_conflicts(
    repo_factory, oxi
) -> None:
    items = [(task_id, f"edit the shared file ({task_id})", "appends its line to `shared.txt`")
             for task_id in IDS]
    repo = repo_factory(roadmap(*items), files={"shared.txt": "start\n"})
    # The critic takes a moment, so each PR is open for a few ticks before it merges.
    slow_critic = [[sys.executable, "-c", "import time; time.sleep(0.6)"]]
    repo.config.write_text(exec_agent_toml(
        SCRIPTED_AGENT, critic=slow_critic, engine={"retry_base_s": 0.05},
        agent_env={"AGENT_TARGET": "shared.txt", "AGENT_SLEEP": "0.3"}))
    daemon = oxi.start(["saturate", "-j", "5", "--interval", "0.2"], repo)

    def all_merged() -> bool:
        with ledger_of(repo) as ledger:
            tasks = ledger.tasks()
        return len(tasks) == 5 and all(t.status is TaskStatus.MERGED for t in tasks)

    wait_for(all_merged, timeout=90, what="five merges")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.stderr

    # All five lines landed on origin's main, each exactly once, and nothing conflicted.
    lines = origin_lines(repo, "shared.txt")
    assert lines[0] == "start"
    assert sorted(lines[1:]) == sorted(f"{task_id} was here" for task_id in IDS)
    with ledger_of(repo) as ledger:
        assert ledger.events(types=[ev.PR_CONFLICTED]) == []
        states = ledger.query("SELECT task_id, state FROM pull_requests ORDER BY number")
        assert sorted(states) == sorted((task_id, "merged") for task_id in IDS)
        assert all(t.attempts == 1 for t in ledger.tasks())

        # Each waited its turn: a task is claimed only after the previous one's PR merged
        # (the forge's merge time; the ledger's task_merged may follow a moment later, when
        # the worker that armed auto-merge returns).
        claims = ledger.events(types=[ev.TASK_CLAIMED])
        merged_at = dict(ledger.query(
            "SELECT task_id, updated_at FROM pull_requests WHERE state = 'merged'"))
        order = [claim.task_id for claim in claims]
        assert sorted(order) == sorted(IDS)
        for previous, claim in zip(order, claims[1:], strict=False):
            assert claim.ts >= merged_at[previous], (claim.task_id, "claimed before", previous,
                                                     "merged")

        # The deferrals name what each task waited for (an in-flight task or an open PR).
        deferred = ledger.events(types=[ev.TASK_DEFERRED])
        waited = {e.task_id for e in deferred}
        assert waited == set(order[1:])
        for event in deferred:
            assert event.payload["gate"] == "file_overlap"
            assert event.payload["files"] == ["shared.txt"]
            named = event.payload["overlapping_tasks"] + [
                f"#{n}" for n in event.payload["overlapping_prs"]]
            assert named, event.payload
            assert all(name in event.payload["reason"] for name in named)
        assert any(e.payload["overlapping_prs"] for e in deferred)
        assert any(e.payload["overlapping_tasks"] for e in deferred)
        assert_ledger_consistent(ledger)
