"""The file-overlap gate sees every task from its claim until its pull request is merged or
closed, whatever the forge's list of open PRs says (issue 9, point 12)."""

from __future__ import annotations

import signal
import sys

from oxi_core.ledger import events as ev
from oxi_core.models import Event
from oxi_core.tasks import TaskStatus
from oxi_core.testing.repos import exec_agent_toml
from tests.conftest import SCRIPTED_AGENT, roadmap
from tests.unattended.support import assert_ledger_consistent, ledger_of, wait_for

IDS = [f"T1-{n}" for n in range(5, 10)]
# Statuses in which a task's change is not settled yet: its worktree or its PR may still touch
# the file. A task leaves them by merging, by its PR closing, or by going back to be planned.
UNSETTLED = {str(TaskStatus.DISPATCHED), str(TaskStatus.IN_REVIEW)}


def unsettled_windows(events: list[Event]) -> dict[str, list[tuple[int, int]]]:
    """Per task, the ledger event ids from each claim to the move that settled it."""
    windows: dict[str, list[tuple[int, int]]] = {}
    opened: dict[str, int] = {}
    for event in events:
        if event.task_id is None:
            continue
        if event.type == ev.TASK_CLAIMED:
            opened[event.task_id] = event.id
        elif event.payload.get("from") in UNSETTLED and (
                event.payload.get("to") not in UNSETTLED) and event.task_id in opened:
            windows.setdefault(event.task_id, []).append((opened.pop(event.task_id), event.id))
    for task_id, start in opened.items():
        windows.setdefault(task_id, []).append((start, 10**12))
    return windows


def test_no_task_is_claimed_while_one_touching_its_file_is_dispatched_or_in_review(
    repo_factory, oxi
) -> None:
    items = [(task_id, f"edit the shared file ({task_id})", "appends its line to `shared.txt`")
             for task_id in IDS]
    repo = repo_factory(roadmap(*items), files={"shared.txt": "start\n"})
    slow_critic = [[sys.executable, "-c", "import time; time.sleep(2)"]]
    repo.config.write_text(exec_agent_toml(
        SCRIPTED_AGENT, critic=slow_critic, engine={"retry_base_s": 0.05},
        agent_env={"AGENT_TARGET": "shared.txt", "AGENT_SLEEP": "0.2"}))
    daemon = oxi.start(["saturate", "-j", "5", "--interval", "0.05"], repo)

    def all_merged() -> bool:
        with ledger_of(repo) as ledger:
            tasks = ledger.tasks()
        return len(tasks) == 5 and all(t.status is TaskStatus.MERGED for t in tasks)

    wait_for(all_merged, timeout=120, what="five merges")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.stderr

    with ledger_of(repo) as ledger:
        events = ledger.events()
        windows = unsettled_windows(events)
        claims = [e for e in events if e.type == ev.TASK_CLAIMED]
        assert sorted(c.task_id for c in claims) == sorted(IDS)  # each once, none conflicted
        for claim in claims:
            for other, spans in windows.items():
                if other == claim.task_id:
                    continue
                for start, end in spans:
                    assert not start < claim.id < end, (
                        f"{claim.task_id} was claimed (event {claim.id}) while {other}, "
                        f"which touches the same file, was unsettled (events {start}-{end})")
        assert ledger.events(types=[ev.PR_CONFLICTED]) == []
        assert_ledger_consistent(ledger)
