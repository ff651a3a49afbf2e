"""Operator-configured worktree hooks (``after_create``, ``before_run``, ...): argv + timeout."""

from __future__ import annotations

from pathlib import Path

import attrs

from oxi_core.agentic.runner import build_env
from oxi_core.agentic.scope import run_scoped
from oxi_core.config import HookCommand
from oxi_core.policy import Policy


@attrs.frozen
class HookOutcome:
    name: str
    ok: bool
    exit_code: int | None
    output_tail: str
    timed_out: bool = False
    timeout_s: float = 0.0
    timeout_set_by: str = ""  # the key that set the timeout, e.g. "[engine] hook_timeout_s"

    def failure(self) -> str:
        """What went wrong, for the task's last error."""
        if self.timed_out:
            return (f"{self.name} hook timed out after {self.timeout_s:g} s "
                    f"({self.timeout_set_by})")
        return f"{self.name} hook failed"

    def payload(self) -> dict[str, object]:
        """The worktree_hook_failed event's payload."""
        payload: dict[str, object] = {"hook": self.name, "exit_code": self.exit_code,
                                      "output": self.output_tail}
        if self.timed_out:
            payload.update(timed_out=True, timeout_s=self.timeout_s,
                           timeout_set_by=self.timeout_set_by)
        return payload


def run_hook(name: str, hook: HookCommand | None, cwd: Path, policy: Policy) -> HookOutcome:
    """Run one hook in ``cwd`` (its own session; everything it started is stopped after it,
    and all of it is killed once the hook's timeout, or else the engine's, runs out)."""
    if hook is None:
        return HookOutcome(name, True, 0, "")
    timeout_s, set_by = hook.timeout(policy, name)
    try:
        code, output = run_scoped(list(hook.argv), cwd=cwd, env=build_env(),
                                  timeout_s=timeout_s)
    except OSError as error:
        return HookOutcome(name, False, None, f"cannot run {hook.argv[0]}: {error}")
    tail = "\n".join(output.strip().splitlines()[-20:])
    if code is None:
        return HookOutcome(name, False, None, tail, timed_out=True, timeout_s=timeout_s,
                           timeout_set_by=set_by)
    return HookOutcome(name, code == 0, code, tail)
