"""oxi's OpenRouter inference target: ``[inference.NAME] type = "openrouter"``."""

from __future__ import annotations

__all__ = ["OpenRouterTarget"]


def __getattr__(name: str) -> object:
    if name in __all__:  # loads only when used: `oxi --help` imports this package
        from oxi_openrouter import target

        return getattr(target, name)
    raise AttributeError(name)
