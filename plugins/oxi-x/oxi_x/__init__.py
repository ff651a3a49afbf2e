"""oxi's X source: ``[sources.NAME] type = "x"`` runs the operator's X tool."""

from __future__ import annotations

__all__ = ["XSource"]


def __getattr__(name: str) -> object:
    # The source (attrs, the runner) loads only when used: `oxi --help` imports this package.
    if name == "XSource":
        from oxi_x.source import XSource

        return XSource
    raise AttributeError(name)
