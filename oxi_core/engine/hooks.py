"""Operator-configured worktree hooks (``after_create``, ``before_run``, ...): argv + timeout."""

from __future__ import annotations

from pathlib import Path

import attrs

from oxi_core.agentic.runner import build_env
from oxi_core.agentic.scope import run_scoped
from oxi_core.config import HookCommand


@attrs.frozen
class HookOutcome:
    name: str
    ok: bool
    exit_code: int | None
    output_tail: str


def run_hook(name: str, hook: HookCommand | None, cwd: Path) -> HookOutcome:
    """Run one hook in ``cwd`` (its own session; everything it started is stopped after it)."""
    if hook is None:
        return HookOutcome(name, True, 0, "")
    try:
        code, output = run_scoped(list(hook.argv), cwd=cwd, env=build_env(),
                                  timeout_s=hook.timeout_s)
    except OSError as error:
        return HookOutcome(name, False, None, f"cannot run {hook.argv[0]}: {error}")
    if code is None:
        output += f"\n(timed out after {hook.timeout_s:.0f}s)"
    tail = "\n".join(output.strip().splitlines()[-20:])
    return HookOutcome(name, code == 0, code, tail)
