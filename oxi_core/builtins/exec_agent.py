"""The ``exec`` agent: runs a configured argv in the worktree as the worker. Its contract
(environment, exit codes, result line) is :class:`ExecAgent`'s docstring, which
docs/configuration.md shows; the prompt file is removed when the run ends (prompt_files)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core import __version__
from oxi_core.log import get_logger

if TYPE_CHECKING:
    # Imported when a task runs: loading oxi.toml (every command) builds this class, and
    # needs none of the runner's machinery.
    from oxi_core.agentic.types import CanonicalEvent, DispatchRequest, DispatchResult, Usage
    from oxi_core.models import FailureKind as K

EX_TEMPFAIL = 75
EX_NOPERM = 77


@attrs.define
class ExecAgent:
    """Runs any program as the worker, in the task's worktree. It gets the prompt in
    ``$OXI_PROMPT`` and the file ``$OXI_PROMPT_FILE``, the task id in ``$OXI_TASK_ID``, and its
    dollar cap (the per-task cap for its model) in ``$OXI_MAX_COST_USD``, which it must stay
    within (a run reporting more is a ``task_cap_exceeded`` event and a notification). Its exit
    says how it went: 0 success; 75 (EX_TEMPFAIL) a transient failure, retried later; 77
    (EX_NOPERM) its provider refused its credentials, a setup error: the task is requeued
    without counting the attempt and the engine pauses until ``oxi resume``; anything else a
    failure. A stdout line ``{"type": "result", "cost_usd": .., "input_tokens": ..,
    "output_tokens": ..}`` reports what the run cost; a failing run may add ``"failure_kind"``
    (e.g. ``"server_error"``: routing then falls back to the next agent)."""

    # The program and its arguments (never a shell string); it runs in the task's worktree with the
    # prompt in $OXI_PROMPT and $OXI_PROMPT_FILE.
    argv: tuple[str, ...]
    # The longest a run may take (at most the engine's agent_timeout_s).
    timeout_s: float = 900.0
    # The longest it may stay silent once it has spoken.
    stall_timeout_s: float = 300.0
    # Environment variables for it (values may be { env = ... }).
    env: Mapping[str, str] = attrs.field(factory=dict)
    # Variables passed through from oxi's environment (beyond PATH, HOME, ...).
    pass_env: tuple[str, ...] = ()
    # The model name it reports (prices its usage by the rate card when known).
    model: str = "exec"

    def version(self) -> str:
        return __version__

    def model_id(self) -> str:
        return self.model

    def usage_normalizer(self, raw: Mapping[str, Any]) -> Usage:
        from oxi_core.agentic.types import Usage

        return Usage(
            input_tokens=int(raw.get("input_tokens", 0)),
            output_tokens=int(raw.get("output_tokens", 0)),
            cached_tokens=int(raw.get("cached_tokens", 0)),
            reasoning_tokens=int(raw.get("reasoning_tokens", 0)),
        )

    def tool_translator(self, name: str) -> str:
        return name

    async def invoke(self, request: DispatchRequest) -> DispatchResult:
        from oxi_core.agentic.callbacks import guarded_callbacks
        from oxi_core.agentic.credentials import credential_fix
        from oxi_core.agentic.runner import RunSpec, build_env, run_streaming
        from oxi_core.agentic.types import CanonicalKind, CostSource, DispatchResult
        from oxi_core.builtins.prompt_files import prompt_file
        from oxi_core.config import secret_origin
        from oxi_core.models import Classification
        from oxi_core.models import FailureKind as K

        result: dict[str, Any] = {}
        turns = 0
        last_text: list[str] = []
        emit, spawned = guarded_callbacks(request, get_logger("oxi.agent.exec"))

        def on_line(line: str) -> None:
            nonlocal turns
            event = self._event(line)
            if event.kind is CanonicalKind.RESULT:
                result.update(event.data)
            elif event.kind is CanonicalKind.ASSISTANT:
                turns += 1
                last_text.append(str(event.data.get("text", "")))
            emit(event)

        # Removed when the run ends; one a killed supervisor left goes with the next run.
        with prompt_file(request.prompt) as prompt_path:
            given = {"OXI_PROMPT": request.prompt, "OXI_PROMPT_FILE": str(prompt_path),
                     "OXI_TASK_ID": request.task_id}
            if request.max_cost_usd is not None:
                given["OXI_MAX_COST_USD"] = f"{request.max_cost_usd:g}"
            env = build_env({**self.env, **given}, allow=self.pass_env)
            spec = RunSpec(
                argv=tuple(self.argv), cwd=request.worktree, env=env,
                timeout_s=min(self.timeout_s, request.timeout_s),
                stall_timeout_s=min(self.stall_timeout_s, request.stall_timeout_s),
                startup_timeout_s=request.startup_timeout_s,
            )
            outcome = await run_streaming(spec, on_stdout=on_line, on_spawn=spawned,
                                          cancel=request.cancel)
        usage = self.usage_normalizer(result)
        cost = float(result.get("cost_usd", 0.0))
        common: dict[str, Any] = {
            "cost_usd": cost,
            "cost_source": CostSource.PROVIDER if "cost_usd" in result else CostSource.NONE,
            "usage": usage,
            "turns": int(result.get("turns", turns)),
            "session_id": result.get("session_id"),
            "duration_s": outcome.duration_s,
            "final_text": str(result.get("text", "\n".join(last_text[-3:]))),
            "exit_code": outcome.exit_code,
            "model": self.model,
            "agent": "exec",
        }
        if outcome.spawn_error:
            return DispatchResult(Classification.FAILED, f"cannot start {self.argv[0]}: "
                                  f"{outcome.spawn_error}", failure_kind=K.SETUP_ERROR, **common)
        if outcome.line_too_long:
            return DispatchResult(Classification.FAILED, "output line over 1 MB",
                                  failure_kind=K.AGENT_ERROR, **common)
        if outcome.stalled:
            return DispatchResult(Classification.RETRYABLE_TRANSIENT, outcome.stall_reason(),
                                  failure_kind=K.STALLED, **common)
        if outcome.timed_out:
            return DispatchResult(Classification.RETRYABLE_TRANSIENT, "timed out",
                                  failure_kind=K.AGENT_TIMEOUT, **common)
        if outcome.cancelled:
            return DispatchResult(Classification.FAILED, "cancelled", failure_kind=K.CANCELLED,
                                  **common)
        if outcome.exit_code == 0:
            return DispatchResult(Classification.SUCCESS, "", **common)
        tail = outcome.stderr_tail.strip().splitlines()[-1:] or ["no stderr"]
        reason = f"exited {outcome.exit_code}: {tail[0][:300]}"
        if outcome.exit_code == EX_NOPERM:
            secrets = {f"env.{name}": value for name, value in self.env.items()
                       if secret_origin(value)}
            fix = credential_fix(secrets, unset=(
                "fix the credentials it uses (its kwargs.env, or pass_env)"))
            return DispatchResult(Classification.SETUP_ERROR,
                                  f"credentials refused ({reason}); {fix}",
                                  failure_kind=K.CREDENTIALS, **common)
        if outcome.exit_code == EX_TEMPFAIL:
            return DispatchResult(Classification.RETRYABLE_TRANSIENT, reason,
                                  retry_after_s=result.get("retry_after_s"),
                                  failure_kind=_reported_kind(result), **common)
        return DispatchResult(Classification.FAILED, reason, failure_kind=_reported_kind(result),
                              **common)

    @staticmethod
    def _event(line: str) -> CanonicalEvent:
        from oxi_core.agentic.jsonlines import parse_line
        from oxi_core.agentic.types import CanonicalEvent, CanonicalKind

        data = parse_line(line)
        if data is None:
            return CanonicalEvent(CanonicalKind.ASSISTANT, {"text": line})
        try:
            return CanonicalEvent(CanonicalKind(data.get("type", "assistant")), data)
        except ValueError:
            return CanonicalEvent(CanonicalKind.SYSTEM, data)


def _reported_kind(result: Mapping[str, Any]) -> K:
    """The failure kind a failing run's result line names, else ``agent_error``."""
    from oxi_core.models import FailureKind as K

    try:
        return K(str(result.get("failure_kind")))
    except ValueError:
        return K.AGENT_ERROR
