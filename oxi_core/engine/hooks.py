"""Operator-configured worktree hooks (``after_create``, ``before_run``, ...): argv + timeout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import attrs

from oxi_core.agentic.runner import build_env, group_alive, kill_group
from oxi_core.config import HookCommand


@attrs.frozen
class HookOutcome:
    name: str
    ok: bool
    exit_code: int | None
    output_tail: str


def run_hook(name: str, hook: HookCommand | None, cwd: Path) -> HookOutcome:
    """Run one hook in ``cwd`` (its own process group; killed as a group on timeout)."""
    if hook is None:
        return HookOutcome(name, True, 0, "")
    try:
        proc = subprocess.Popen(
            list(hook.argv), cwd=cwd, env=build_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True,
        )
    except OSError as error:
        return HookOutcome(name, False, None, f"cannot run {hook.argv[0]}: {error}")
    try:
        output, _ = proc.communicate(timeout=hook.timeout_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        output, _ = proc.communicate()
        code = None
        output += f"\n(timed out after {hook.timeout_s:.0f}s)"
    if group_alive(proc.pid):
        kill_group(proc.pid, grace_s=1.0)
    tail = "\n".join(output.strip().splitlines()[-20:])
    return HookOutcome(name, code == 0, code, tail)
