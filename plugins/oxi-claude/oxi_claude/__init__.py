"""oxi's Claude Code agent: ``[agents.NAME] type = "claude"``."""

from __future__ import annotations

__all__ = ["ClaudeCodeAdapter"]


def __getattr__(name: str) -> object:
    # The adapter (attrs, the runner) loads only when used: `oxi --help` imports this package.
    if name == "ClaudeCodeAdapter":
        from oxi_claude.adapter import ClaudeCodeAdapter

        return ClaudeCodeAdapter
    raise AttributeError(name)
