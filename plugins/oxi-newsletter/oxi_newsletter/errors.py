"""The one failure this plugin raises: oxi's SourceError, with what to fix."""

from __future__ import annotations

from typing import Any

from oxi_core.errors import SourceError

LAYOUT_HINT = ("the publication changed its layout: this source stops rather than guess; see "
               "'When a publication changes its layout' in the oxi-newsletter README")


def layout_changed(source: str, message: str, **details: Any) -> SourceError:
    return SourceError(message, source=source, hint=LAYOUT_HINT,
                       details={"layout": True, **details})
