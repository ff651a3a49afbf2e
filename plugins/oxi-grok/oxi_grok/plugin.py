"""Entry point ``grok`` in group ``oxi``: registers the inference target type ``grok``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl


@hookimpl
def register_inference_targets(register: Callable[[str, type[Any] | str], None]) -> None:
    register("grok", "oxi_grok.target:GrokTarget")
