"""The engine's callbacks, guarded: its bookkeeping failing must never hurt the agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.agentic.types import CanonicalEvent, DispatchRequest


def guarded_callbacks(
    request: DispatchRequest, log: Any
) -> tuple[Callable[[CanonicalEvent], None], Callable[[int, int], None]]:
    """``(emit, spawned)``: call ``request.on_event`` / ``request.on_spawn`` when set, and log
    (never raise) what they raise."""

    def emit(event: CanonicalEvent) -> None:
        if request.on_event is None:
            return
        try:
            request.on_event(event)
        except Exception as error:  # the engine's bookkeeping must not kill the agent
            log.warning("on_event_failed", task_id=request.task_id, error=repr(error))

    def spawned(pid: int, pgid: int) -> None:
        if request.on_spawn is None:
            return
        try:
            request.on_spawn(pid, pgid)
        except Exception as error:  # raising here would leave the agent running unseen
            log.error("on_spawn_failed", task_id=request.task_id, error=repr(error))

    return emit, spawned
