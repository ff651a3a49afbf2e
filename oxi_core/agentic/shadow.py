"""Shadow runs (T2-35): the primary agent's run, and optionally a shadow agent's beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oxi_core.agentic.types import DispatchRequest, DispatchResult

if TYPE_CHECKING:
    from oxi_core.engine.engine import Engine


async def invoke_with_shadow(engine: Engine, request: DispatchRequest) -> DispatchResult:
    worker = engine.config.worker
    assert worker is not None
    result: DispatchResult = await worker.invoke(request)
    return result
