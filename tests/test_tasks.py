"""The task state machine: the code's table and docs/task-states.md agree, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oxi_core.errors import IllegalTransition
from oxi_core.tasks import TRANSITIONS, TaskStatus, can_transition, check_transition

DOC = Path(__file__).resolve().parents[1] / "docs" / "task-states.md"


def documented_transitions() -> set[tuple[str, str]]:
    text = DOC.read_text()
    block = text.split("<!-- transitions:", 1)[1].split("<!-- end transitions -->", 1)[0]
    return {
        (m.group(1), m.group(2))
        for m in re.finditer(r"^- (\w+) -> (\w+):", block, re.M)
    }


def test_every_transition_in_code_is_documented_and_nothing_more() -> None:
    in_code = {(str(a), str(b)) for a, targets in TRANSITIONS.items() for b in targets}
    assert documented_transitions() == in_code


def test_every_status_is_documented() -> None:
    text = DOC.read_text()
    for status in TaskStatus:
        assert f"| `{status}` |" in text


def test_terminal_statuses_have_no_way_out() -> None:
    assert TRANSITIONS[TaskStatus.MERGED] == frozenset()
    assert TRANSITIONS[TaskStatus.DONE] == frozenset()


@pytest.mark.parametrize(("current", "target"), [
    ("merged", "planned"), ("planned", "in_review"), ("held", "dispatched"), ("done", "planned"),
])
def test_illegal_transition_raises_naming_both_statuses(current: str, target: str) -> None:
    assert not can_transition(TaskStatus(current), TaskStatus(target))
    with pytest.raises(IllegalTransition, match=f"'{current}' to '{target}'"):
        check_transition("T1-1", current, target)
