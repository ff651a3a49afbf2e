"""Entry point ``openrouter`` in group ``oxi``: registers the inference target ``openrouter``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl


@hookimpl
def register_inference_targets(register: Callable[[str, type[Any] | str], None]) -> None:
    register("openrouter", "oxi_openrouter.target:OpenRouterTarget")
