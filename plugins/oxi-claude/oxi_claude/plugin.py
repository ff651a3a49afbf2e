"""Entry point ``claude`` in group ``oxi``: registers the agent type ``claude``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl


@hookimpl
def register_agents(register: Callable[[str, type[Any] | str], None]) -> None:
    register("claude", "oxi_claude.adapter:ClaudeCodeAdapter")
