"""Entry point ``codex`` in group ``oxi``: registers the agent type ``codex``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl


@hookimpl
def register_agents(register: Callable[[str, type[Any] | str], None]) -> None:
    register("codex", "oxi_codex.adapter:CodexCliAdapter")
