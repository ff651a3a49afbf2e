"""oxi's Codex agent: ``[agents.NAME] type = "codex"``."""

from __future__ import annotations

__all__ = ["CodexCliAdapter", "CodexFormatDriftError"]


def __getattr__(name: str) -> object:
    # The adapter (attrs, the runner) loads only when used: `oxi --help` imports this package.
    if name in __all__:
        from oxi_codex import adapter

        return getattr(adapter, name)
    raise AttributeError(name)
