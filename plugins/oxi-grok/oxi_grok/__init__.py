"""oxi's xAI Grok inference target: ``[inference.NAME] type = "grok"``."""

from __future__ import annotations

__all__ = ["GrokTarget"]


def __getattr__(name: str) -> object:
    if name in __all__:  # loads only when used: `oxi --help` imports this package
        from oxi_grok import target

        return getattr(target, name)
    raise AttributeError(name)
