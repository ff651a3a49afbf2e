"""Entry point ``x`` in group ``oxi``: registers the source type ``x``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl


@hookimpl
def register_sources(register: Callable[[str, type[Any] | str], None]) -> None:
    register("x", "oxi_x.source:XSource")
