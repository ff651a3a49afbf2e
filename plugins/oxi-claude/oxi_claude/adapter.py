"""ClaudeCodeAdapter: one ``claude -p`` run per dispatch, on oxi's shared subprocess runner.

``[agents.claude] type = "claude"``; the kwargs are this class's fields, for example::

    [agents.claude]
    type = "claude"
    kwargs = { model = "claude-sonnet-4-5", max_turns = 40,
               api_key = { env = "ANTHROPIC_API_KEY" } }
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from oxi_claude.events import PROGRESS, ClaudeStream, build_result, normalize_usage, translate_tool
from oxi_core.agentic.callbacks import guarded_callbacks
from oxi_core.agentic.credentials import credential_fix
from oxi_core.agentic.runner import RunSpec, binary_version, build_env, run_streaming
from oxi_core.agentic.types import (
    DispatchRequest,
    DispatchResult,
    Usage,
)
from oxi_core.models import Classification

PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan")
PROGRESS_INTERVAL_S = 1.0


def _positive_or_none(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _cost_arg(dollars: float) -> str:
    return f"{dollars:.6f}".rstrip("0").rstrip(".")


@attrs.define
class ClaudeCodeAdapter:
    """Runs Claude Code in print mode with ``--output-format stream-json``.

    Request fields (model, max_turns, max_cost_usd, resume_session_id) override the kwargs.
    The cost cap goes to ``--max-budget-usd``, which Claude Code enforces itself.
    """

    # The claude executable (a name on PATH, or a path).
    binary: str = "claude"
    # The model to ask for; unset: Claude Code's own default (routing.yaml may choose one).
    model: str | None = None
    # Claude Code's --max-turns.
    max_turns: int | None = attrs.field(default=None, validator=_positive_or_none)
    # A cap of its own (--max-budget-usd); the engine's per-task cap wins when set.
    max_cost_usd: float | None = attrs.field(default=None, validator=_positive_or_none)
    # Claude Code's --permission-mode (bypassPermissions needs trust = "high").
    permission_mode: str = attrs.field(
        default="acceptEdits", validator=attrs.validators.in_(PERMISSION_MODES)
    )
    # Tools allowed without asking (--allowedTools).
    allowed_tools: tuple[str, ...] = ()
    # Tools refused (--disallowedTools).
    disallowed_tools: tuple[str, ...] = ()
    # Text appended to Claude Code's system prompt.
    append_system_prompt: str | None = None
    base_url: str | None = None  # sets ANTHROPIC_BASE_URL (a gateway, a scripted server)
    api_key: str | None = attrs.field(default=None, repr=False)  # use { env = "..." }
    # A throwaway HOME (Claude Code keeps transcripts in ~/.claude), made on first use.
    home: Path | None = attrs.field(default=None, metadata={"created_on_use": True})
    max_retries: int = 0  # CLAUDE_CODE_MAX_RETRIES: oxi retries whole tasks itself
    # More environment variables for the CLI (values may be { env = ... }).
    extra_env: Mapping[str, str] = attrs.field(factory=dict)
    pass_env: tuple[str, ...] = ()  # more variables to pass through from oxi's environment
    # Run every tool call without asking (needs trust = "high").
    dangerously_skip_permissions: bool = False
    _version: str | None = attrs.field(default=None, init=False, repr=False)

    # -- the AgenticAdapter protocol ------------------------------------------------------

    def version(self) -> str:
        """``claude --version`` (run once, then cached); "unknown" when it cannot run."""
        if self._version is None:
            self._version = binary_version(self.binary, self.env())
        return self._version

    def model_id(self) -> str:
        return self.model or "claude-default"

    def usage_normalizer(self, raw: Mapping[str, Any]) -> Usage:
        return normalize_usage(raw)

    def tool_translator(self, name: str) -> str:
        return translate_tool(name)

    def permission_bypass(self) -> str | None:
        if self.dangerously_skip_permissions:
            return "dangerously_skip_permissions runs every tool call without asking"
        if self.permission_mode == "bypassPermissions":
            return 'permission_mode = "bypassPermissions" runs every tool call without asking'
        return None

    # -- building the run -----------------------------------------------------------------

    def argv(self, request: DispatchRequest) -> list[str]:
        model = request.model or self.model
        max_turns = request.max_turns or self.max_turns
        max_cost = request.max_cost_usd if request.max_cost_usd is not None else self.max_cost_usd
        argv = [
            self.binary,
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            # token deltas as they stream: the only sign of life during a long answer
            "--include-partial-messages",
        ]
        if model:
            argv += ["--model", model]
        if max_turns:
            argv += ["--max-turns", str(max_turns)]
        if max_cost is not None and max_cost > 0:
            argv += ["--max-budget-usd", _cost_arg(max_cost)]
        if self.dangerously_skip_permissions:
            argv.append("--dangerously-skip-permissions")
        else:
            argv += ["--permission-mode", self.permission_mode]
        if self.allowed_tools:
            argv += ["--allowedTools", *self.allowed_tools]
        if self.disallowed_tools:
            argv += ["--disallowedTools", *self.disallowed_tools]
        if self.append_system_prompt:
            argv += ["--append-system-prompt", self.append_system_prompt]
        if request.resume_session_id:
            argv += ["--resume", request.resume_session_id]
        argv += ["--", request.prompt]  # `--`: a prompt starting with "-" is not an option
        return argv

    def env(self) -> dict[str, str]:
        """The allow-listed environment plus exactly what Claude Code needs."""
        extra = {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",  # a pinned CLI must not replace itself mid-loop
            "CLAUDE_CODE_MAX_RETRIES": str(self.max_retries),
        }
        if self.api_key:
            extra["ANTHROPIC_API_KEY"] = self.api_key
        if self.base_url:
            extra["ANTHROPIC_BASE_URL"] = self.base_url
        if self.home is not None:
            extra["HOME"] = str(self.home)
        if self.dangerously_skip_permissions and hasattr(os, "geteuid") and os.geteuid() == 0:
            extra["IS_SANDBOX"] = "1"  # as root, the flag is refused without it
        extra.update(self.extra_env)
        return build_env(extra, allow=self.pass_env)

    # -- running --------------------------------------------------------------------------

    async def invoke(self, request: DispatchRequest) -> DispatchResult:
        from oxi_core.log import get_logger

        log = get_logger("oxi.agent.claude")
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
        stream = ClaudeStream(translate=self.tool_translator)
        last_progress = 0.0

        emit, spawned = guarded_callbacks(request, log)

        def on_line(line: str) -> None:
            nonlocal last_progress
            try:
                events = stream.feed_line(line)
            except Exception as error:  # a parser bug must not stop the draining
                log.error("claude_line_unparsed", task_id=request.task_id, error=repr(error))
                return
            for event in events:
                if event is PROGRESS:
                    now = time.monotonic()
                    if now - last_progress < PROGRESS_INTERVAL_S:
                        continue
                    last_progress = now
                emit(event)

        spec = RunSpec(
            argv=tuple(self.argv(request)),
            cwd=request.worktree,
            env=self.env(),
            timeout_s=request.timeout_s,
            stall_timeout_s=request.stall_timeout_s,
            startup_timeout_s=request.startup_timeout_s,
        )
        outcome = await run_streaming(
            spec, on_stdout=on_line, on_spawn=spawned, cancel=request.cancel
        )
        result = build_result(
            stream.run,
            outcome,
            requested_model=request.model or self.model,
            stall_timeout_s=request.stall_timeout_s,
            timeout_s=request.timeout_s,
        )
        if result.classification is Classification.SETUP_ERROR:
            fix = credential_fix({"api_key": self.api_key}, unset=(
                "set kwargs.api_key = { env = \"NAME\" } (claude used its own login or "
                "environment) and check ANTHROPIC_BASE_URL"))
            result = attrs.evolve(result, reason=f"{result.reason}; {fix}")
        if stream.run.non_json_lines:
            log.warning(
                "claude_non_json_lines", task_id=request.task_id, count=stream.run.non_json_lines
            )
        undercount = result.undercount_event()
        if undercount is not None:
            emit(undercount)
        return result
