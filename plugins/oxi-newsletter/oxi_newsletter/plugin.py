"""Entry point ``newsletter`` in group ``oxi``: registers the source type ``newsletter``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl


@hookimpl
def register_sources(register: Callable[[str, type[Any] | str], None]) -> None:
    register("newsletter", "oxi_newsletter.source:NewsletterSource")
