"""The built-in gates as pure decisions: the file-overlap gate's containment rule, and what it
sees (issue 9, points 12 and 14)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oxi_core.builtins.gates import FileOverlapGate, paths_overlap
from oxi_core.engine.state import EngineState
from oxi_core.models import GateAction, PullRequest, PullRequestState
from oxi_core.policy import Policy
from oxi_core.tasks import Task, TaskStatus


def task(task_id: str, *files: str, status: TaskStatus = TaskStatus.PLANNED) -> Task:
    return Task(id=task_id, tier=1, title=task_id, status=status, files_touched=files)


def state(*, in_flight: tuple[Task, ...] = (), in_review: tuple[Task, ...] = (),
          open_prs: tuple[PullRequest, ...] = ()) -> EngineState:
    return EngineState(now=datetime(2026, 1, 1, tzinfo=UTC), policy=Policy(),
                       in_flight=in_flight, open_prs=open_prs, spent_today_usd=0.0,
                       reserved_usd=0.0, worker_model=None, estimate=lambda _task: 0.0,
                       in_review=in_review)


@pytest.mark.parametrize(("left", "right", "overlap"), [
    ("src/a.py", "src/a.py", True),
    ("src/", "src/a.py", True),  # a folder contains its files
    ("src", "src/a.py", True),
    ("src/a.py", "src/", True),  # and the other way round
    ("src/a", "src/a/b.py", True),
    ("src/a", "src/ab", False),  # a shared prefix is not containment
    ("src/ab", "src/a", False),
    ("src/a.py", "src/a.pyc", False),
    ("docs/x.md", "src/x.md", False),
])
def test_paths_overlap_when_equal_or_one_contains_the_other(
    left: str, right: str, overlap: bool
) -> None:
    assert bool(paths_overlap([left], [right])) is overlap
    assert bool(paths_overlap([right], [left])) is overlap


def test_a_task_touching_a_folder_waits_for_one_touching_a_file_in_it() -> None:
    running = task("T1-1", "src/a.py", status=TaskStatus.DISPATCHED)
    decision = FileOverlapGate().check(task("T1-2", "src/"), state(in_flight=(running,)))
    assert decision.action is GateAction.DEFER
    assert decision.details["overlapping_tasks"] == ["T1-1"]
    assert decision.details["files"] == ["src"]
    sibling = FileOverlapGate().check(task("T1-3", "src/ab"), state(
        in_flight=(task("T1-1", "src/a", status=TaskStatus.DISPATCHED),)))
    assert sibling.action is GateAction.ALLOW


def test_the_gate_sees_a_task_in_review_that_the_forge_no_longer_lists() -> None:
    # The forge's list of open PRs lags (or its PR just merged while its task settles): the
    # ledger's in-review task still holds the file until it is merged or closed.
    reviewing = task("T1-1", "shared.txt", status=TaskStatus.IN_REVIEW)
    decision = FileOverlapGate().check(task("T1-2", "shared.txt"),
                                       state(in_review=(reviewing,), open_prs=()))
    assert decision.action is GateAction.DEFER
    assert decision.details["overlapping_tasks"] == ["T1-1"]
    assert "T1-1" in decision.reason


def test_an_open_pr_of_a_person_is_seen_too() -> None:
    pr = PullRequest(number=7, branch="fix", base="main", title="a fix",
                     state=PullRequestState.OPEN, files=("src/a.py",))
    decision = FileOverlapGate().check(task("T1-2", "src/"), state(open_prs=(pr,)))
    assert decision.action is GateAction.DEFER
    assert decision.details["overlapping_prs"] == [7]
    assert FileOverlapGate().check(task("T1-3"), state(open_prs=(pr,))).action is (
        GateAction.ALLOW)  # a task naming no file is never deferred for overlap
