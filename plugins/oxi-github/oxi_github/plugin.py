"""Entry point ``github`` in group ``oxi``: registers the forge type ``github`` and the
auto-improve source type ``github``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl


@hookimpl
def register_forges(register: Callable[[str, type[Any]], None]) -> None:
    from oxi_github.forge import GitHubForge

    register("github", GitHubForge)


@hookimpl
def register_sources(register: Callable[[str, type[Any]], None]) -> None:
    from oxi_github.source import GitHubSource

    register("github", GitHubSource)
