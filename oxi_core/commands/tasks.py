"""`oxi task list|show|release|retry`: one task at a time, from the ledger alone."""

from __future__ import annotations

import click

from oxi_core.commands.common import CliState, emit_json, json_option, pass_state


def add_commands(cli: click.Group) -> None:
    @cli.group(name="task")
    def task_group() -> None:
        """See what happened to a task, and act on it."""

    @task_group.command(name="release")
    @click.argument("task_id")
    @json_option
    @pass_state
    def task_release(state: CliState, task_id: str, as_json: bool) -> None:
        """Release a task a gate held (over budget): it dispatches past the cap."""
        from oxi_core.errors import OxiError
        from oxi_core.ledger import events as ev
        from oxi_core.tasks import TaskStatus

        moved = state.ledger().transition(
            task_id, TaskStatus.PLANNED, event_type=ev.TASK_RELEASED,
            payload={"by": "operator"}, expect=[TaskStatus.HELD], budget_released=True,
            held_reason=None)
        if moved is None:
            raise OxiError(f"{task_id} is not held", hint=f"`oxi task show {task_id}` says why")
        if as_json:
            emit_json("task release", {"task": task_id, "status": str(moved.status)})
            return
        click.echo(f"{task_id} released")

    @task_group.command(name="retry")
    @click.argument("task_id")
    @json_option
    @pass_state
    def task_retry(state: CliState, task_id: str, as_json: bool) -> None:
        """Plan a failed or abandoned task again: a new round of attempts (their numbers go
        on)."""
        from oxi_core.errors import LedgerError, OxiError
        from oxi_core.ledger import events as ev
        from oxi_core.tasks import TaskStatus

        ledger = state.ledger()
        task = ledger.task(task_id)
        if task is None:
            raise LedgerError(f"no task {task_id} in the ledger",
                              hint="`oxi task list` shows the tasks it has")
        # Attempt numbers never repeat (a result is recorded once per attempt number).
        moved = ledger.transition(
            task_id, TaskStatus.PLANNED, event_type=ev.TASK_RETRY_REQUESTED,
            payload={"by": "operator"}, expect=[TaskStatus.FAILED, TaskStatus.ABANDONED],
            last_error=None, round_start=task.attempts)
        if moved is None:
            raise OxiError(f"{task_id} has neither failed nor been abandoned",
                           hint=f"`oxi task show {task_id}` says where it stands")
        if as_json:
            emit_json("task retry", {"task": task_id, "status": str(moved.status)})
            return
        click.echo(f"{task_id} planned again")
