"""Entry point ``github`` in group ``oxi``: registers the forge type ``github`` and the
auto-improve source type ``github``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl


@hookimpl
def register_forges(register: Callable[[str, type[Any] | str], None]) -> None:
    register("github", "oxi_github.forge:GitHubForge")


@hookimpl
def register_sources(register: Callable[[str, type[Any] | str], None]) -> None:
    register("github", "oxi_github.source:GitHubSource")
