"""CodexCliAdapter: one ``codex exec --json`` run per dispatch, on oxi's shared runner.

``[agents.codex] type = "codex"``; the kwargs are this class's fields, for example::

    [agents.codex]
    type = "codex"
    kwargs = { model = "gpt-5.5", pinned_version = "0.169.0", provider = "gateway",
               base_url = "http://127.0.0.1:4000/v1", api_key = { env = "LITELLM_KEY" } }

Codex keeps its configuration and sessions in ``CODEX_HOME``. With ``provider`` (and
``base_url``) set, the adapter owns ``CODEX_HOME/config.toml`` and writes it; otherwise the
``codex_home`` given must already hold one (for example after ``codex login``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from oxi_codex.events import (
    ACTION_ITEMS,
    CodexStream,
    build_result,
    normalize_usage,
    run_usage,
)
from oxi_codex.sandbox import (
    bubblewrap_on,
    ensure_helper,
    helper_folder,
    sandbox_problem,
    with_helper_first,
)
from oxi_codex.session_file import read_session
from oxi_core.agentic.callbacks import guarded_callbacks
from oxi_core.agentic.credentials import credential_fix
from oxi_core.agentic.runner import RunSpec, binary_version, build_env, run_streaming
from oxi_core.agentic.types import (
    CanonicalEvent,
    CanonicalKind,
    DispatchRequest,
    DispatchResult,
    Usage,
)
from oxi_core.errors import AgentSetupError, ConfigError
from oxi_core.models import Classification

SANDBOXES = ("read-only", "workspace-write", "danger-full-access")
DEFAULT_MODEL = "gpt-5.5"
DEFAULT_ENV_KEY = "OXI_CODEX_API_KEY"
# Codex's own stream idle timeout when the config does not set one (observed: 5 minutes).
CODEX_DEFAULT_STREAM_IDLE_S = 300.0
KNOWN_GOOD_FIXTURE = "codex_known_model.jsonl"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class CodexFormatDriftError(AgentSetupError):
    """The codex binary is not the version oxi's parser was checked against."""


class CodexSandboxError(AgentSetupError):
    """Codex's sandbox cannot run a command on this host: every command would be refused."""


def _bare_key(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not _BARE_KEY.match(value):
        raise ValueError(f"{attribute.name} must be letters, digits, '-' or '_', got {value!r}")


def _semver(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not _SEMVER.fullmatch(value):
        raise ValueError(f"{attribute.name} must be MAJOR.MINOR.PATCH, got {value!r}")


def _positive_or_none(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@attrs.define
class CodexCliAdapter:
    """Runs ``codex exec --json`` with its own ``CODEX_HOME`` and a pinned version."""

    # The codex executable (a name on PATH, or a path).
    binary: str = "codex"
    # The model to ask for (routing.yaml may choose another).
    model: str = DEFAULT_MODEL
    # The codex version whose --json output oxi was checked against; another version is a setup
    # error.
    pinned_version: str | None = attrs.field(default=None, validator=_semver)
    # Codex's sandbox: read-only, workspace-write or danger-full-access (needs trust = "high").
    sandbox: str = attrs.field(default="workspace-write", validator=attrs.validators.in_(SANDBOXES))
    # Default: ~/.oxi/codex-home/<provider>-<hash of settings>; made on first use.
    codex_home: Path | None = attrs.field(default=None, metadata={"created_on_use": True})
    # A model provider of its own (with base_url), e.g. a gateway; unset: OpenAI.
    provider: str | None = attrs.field(default=None, validator=_bare_key)
    base_url: str | None = None  # the provider's Responses API root, e.g. http://host:4000/v1
    # The environment variable codex reads the provider's key from.
    env_key: str = attrs.field(default=DEFAULT_ENV_KEY, validator=_bare_key)
    api_key: str | None = attrs.field(default=None, repr=False)  # use { env = "..." }
    # Codex's own stream idle timeout (at most the engine's stall timeout).
    stream_idle_timeout_ms: int | None = attrs.field(default=None, validator=_positive_or_none)
    max_retries: int = 0  # request_max_retries / stream_max_retries: oxi retries tasks itself
    # A turn limit, if any.
    max_turns: int | None = attrs.field(default=None, validator=_positive_or_none)
    sessions_dir: Path | None = attrs.field(  # default CODEX_HOME/sessions
        default=None, metadata={"created_on_use": True})
    # A throwaway HOME (commands run as `bash -lc`), made on first use.
    home: Path | None = attrs.field(default=None, metadata={"created_on_use": True})
    # Let codex run outside a git repository.
    skip_git_repo_check: bool = False
    # More environment variables for the CLI (values may be { env = ... }).
    extra_env: Mapping[str, str] = attrs.field(factory=dict)
    # Variables passed through from oxi's environment.
    pass_env: tuple[str, ...] = ()
    _version: str | None = attrs.field(default=None, init=False, repr=False)
    _checked: bool = attrs.field(default=False, init=False, repr=False)
    # thread id -> the thread's cumulative usage after its last run here (resume deltas)
    _thread_totals: dict[str, Usage] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.provider is not None and not self.base_url:
            raise ValueError("provider needs base_url (the provider's Responses API root)")

    # -- the AgenticAdapter protocol ------------------------------------------------------

    def version(self) -> str:
        """The binary's semver from ``codex --version`` (run once, then cached)."""
        if self._version is None:
            self._version = binary_version(self.binary, self.env())
        return self._version

    def model_id(self) -> str:
        return self.model

    def usage_normalizer(self, raw: Mapping[str, Any]) -> Usage:
        return normalize_usage(raw)

    def tool_translator(self, name: str) -> str:
        return {
            "command_execution": "shell",
            "file_change": "edit",
            "exec_command": "shell",
            "apply_patch": "edit",
        }.get(name, name.lower())

    def permission_bypass(self) -> str | None:
        if self.sandbox == "danger-full-access":
            return 'sandbox = "danger-full-access" runs model commands without a sandbox'
        return None

    # -- CODEX_HOME -----------------------------------------------------------------------

    def config_toml(self) -> str | None:
        """The config.toml this adapter writes, or None when it does not manage one."""
        if self.provider is None:
            return None
        assert self.base_url is not None
        lines = [
            "# Written by oxi (oxi-codex); edits are overwritten.",
            f"model = {_toml_string(self.model)}",
            f"model_provider = {_toml_string(self.provider)}",
            "",
            f"[model_providers.{self.provider}]",
            f"name = {_toml_string(self.provider)}",
            f"base_url = {_toml_string(self.base_url)}",
            'wire_api = "responses"',
            f"env_key = {_toml_string(self.env_key)}",
            f"request_max_retries = {self.max_retries}",
            f"stream_max_retries = {self.max_retries}",
        ]
        if self.stream_idle_timeout_ms is not None:
            lines.append(f"stream_idle_timeout_ms = {self.stream_idle_timeout_ms}")
        return "\n".join(lines) + "\n"

    def resolved_codex_home(self) -> Path:
        if self.codex_home is not None:
            return self.codex_home
        settings = self.config_toml() or ""
        digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
        return Path.home() / ".oxi" / "codex-home" / f"{self.provider or 'openai'}-{digest}"

    def sessions_path(self) -> Path:
        return self.sessions_dir or self.resolved_codex_home() / "sessions"

    def prepare_home(self) -> Path:
        """Create CODEX_HOME and write (or check) its config.toml."""
        home = self.resolved_codex_home()
        home.mkdir(parents=True, exist_ok=True)
        config = home / "config.toml"
        text = self.config_toml()
        if text is not None:
            if not config.is_file() or config.read_text(encoding="utf-8") != text:
                config.write_text(text, encoding="utf-8")
        elif self.codex_home is None:
            if not config.exists():  # the default provider (OpenAI): nothing to configure
                config.write_text(
                    "# Written by oxi (oxi-codex): Codex's defaults.\n", encoding="utf-8"
                )
        elif not config.is_file():
            raise ConfigError(
                f"codex_home {home} has no config.toml",
                hint="set kwargs.provider and kwargs.base_url so oxi writes one, or run "
                f"`CODEX_HOME={home} codex login` there",
            )
        return home

    # -- the format pin (T2-31) -----------------------------------------------------------

    def check(self) -> None:
        """Prepare CODEX_HOME, compare the binary's version with ``pinned_version`` and push
        the known-good fixture through the parser. Raises CodexFormatDriftError on drift.
        Cheap after the first call."""
        if self._checked:
            return
        self.prepare_home()
        found = self.version()
        if self.pinned_version is not None and found != self.pinned_version:
            raise CodexFormatDriftError(
                f"codex at {self.binary!r} is version {found}, but this adapter is pinned to "
                f"{self.pinned_version}: its --json event format may have drifted",
                hint="install the pinned version (scripts/install-agent-clis) or re-verify the "
                "parser against the new version and update kwargs.pinned_version",
            )
        problem = self_test()
        if problem is not None:
            raise CodexFormatDriftError(
                f"codex {found}: the event parser no longer reads the known-good fixture "
                f"({problem})",
                hint="the oxi-codex package is damaged or out of date",
            )
        ensure_helper(self.binary)
        env = self.env()
        refused = sandbox_problem(self.binary, self.sandbox, env)
        if refused is not None:
            raise CodexSandboxError(
                f"codex {found}: its {self.sandbox} sandbox cannot run a command on this host "
                f"({refused}); the bubblewrap it meets: {bubblewrap_on(env)}",
                hint="install bubblewrap 0.9 or newer (it has --argv0), or remove the system "
                "bwrap so codex uses the one it bundles, or allow unprivileged user namespaces; "
                'kwargs.sandbox = "danger-full-access" (with trust = "high") runs without one',
            )
        self._checked = True

    def validate(self) -> None:
        """For `oxi config check` and `oxi doctor`: the same checks as before the first run
        (version pin, parser, a command through the sandbox)."""
        self.check()

    # -- building the run -----------------------------------------------------------------

    def stream_idle_ms(self, request: DispatchRequest) -> int | None:
        """Codex's own stream idle timeout for this run, when the adapter can set it."""
        if self.provider is None:
            return None
        ms = int(request.stall_timeout_s * 1000)
        if self.stream_idle_timeout_ms is not None:
            ms = min(ms, self.stream_idle_timeout_ms)
        return max(ms, 1)

    def argv(self, request: DispatchRequest) -> list[str]:
        argv = [
            self.binary,
            "exec",
            "--json",
            "--sandbox",
            self.sandbox,
            "--model",
            request.model or self.model,
        ]
        if self.skip_git_repo_check:
            argv.append("--skip-git-repo-check")
        # Codex snapshots its login shell's environment (the API key included) into
        # CODEX_HOME/shell_snapshots and removes it only on a clean shutdown: never take one.
        argv += ["-c", "features.shell_snapshot=false"]
        idle_ms = self.stream_idle_ms(request)
        if idle_ms is not None:
            argv += ["-c", f"model_providers.{self.provider}.stream_idle_timeout_ms={idle_ms}"]
        if request.resume_session_id:
            argv += ["resume", request.resume_session_id]
        argv += ["--", request.prompt]  # `--`: a prompt starting with "-" is not an option
        return argv

    def env(self) -> dict[str, str]:
        """The allow-listed environment plus CODEX_HOME, HOME and the provider's key, with
        oxi's sandbox helper folder first on PATH (oxi_codex.sandbox)."""
        extra = {"CODEX_HOME": str(self.resolved_codex_home())}
        if self.home is not None:
            extra["HOME"] = str(self.home)
        if self.api_key:
            # a managed provider reads env_key; Codex's built-in OpenAI provider CODEX_API_KEY
            extra[self.env_key if self.provider else "CODEX_API_KEY"] = self.api_key
        extra.update(self.extra_env)
        return with_helper_first(build_env(extra, allow=self.pass_env),
                                 helper_folder(self.binary))

    # -- running --------------------------------------------------------------------------

    async def invoke(self, request: DispatchRequest) -> DispatchResult:
        from oxi_core.log import get_logger

        log = get_logger("oxi.agent.codex")
        if not self._checked:
            await asyncio.to_thread(self.check)  # CodexFormatDriftError: an operator error
        if self.home is not None:
            self.home.mkdir(parents=True, exist_ok=True)
        model = request.model or self.model
        max_turns = request.max_turns or self.max_turns
        sessions = self.sessions_path()
        baseline = None
        if request.resume_session_id:
            baseline = self._thread_totals.get(request.resume_session_id)
            if baseline is None:
                before = await asyncio.to_thread(
                    read_session, request.resume_session_id, sessions, attempts=1
                )
                if before is not None and before.total is not None:
                    baseline = normalize_usage(before.total)

        emit, spawned = guarded_callbacks(request, log)

        emit(
            CanonicalEvent(
                CanonicalKind.SYSTEM,
                {
                    "subtype": "limits",
                    "agent": "codex",
                    "model": model,
                    "max_turns": max_turns,
                    "max_turns_enforced_by": "oxi" if max_turns else None,
                    # Codex has no spending cap: the figure is recorded, and compared afterwards.
                    "max_cost_usd": request.max_cost_usd,
                    "max_cost_enforced": False,
                },
            )
        )
        stream = CodexStream()
        stop = asyncio.Event()
        phase = "start"
        cap_hit = False
        idle_guarded = self.stream_idle_ms(request) is not None or (
            request.stall_timeout_s >= CODEX_DEFAULT_STREAM_IDLE_S
        )

        def on_line(line: str) -> None:
            nonlocal phase, cap_hit
            try:
                events = stream.feed_line(line)
            except Exception as error:  # a parser bug must not stop the draining
                log.error("codex_line_unparsed", task_id=request.task_id, error=repr(error))
                return
            for event in events:
                kind = event.kind
                if kind is CanonicalKind.TOOL_USE and event.data.get("name") in ACTION_ITEMS:
                    phase = "tool"
                elif kind is CanonicalKind.TOOL_RESULT or (
                    kind is CanonicalKind.SYSTEM and event.data.get("subtype") in ("turn.started",)
                ):
                    phase = "model"
                elif kind is CanonicalKind.RESULT:
                    phase = "done"
                emit(event)
            run = stream.run
            if (
                max_turns
                and not cap_hit
                and not run.completed_turns
                and run.tool_steps >= max_turns
            ):
                # The next model response would be turn max_turns + 1: stop here, as
                # `claude --max-turns` does after running the last allowed tool call.
                cap_hit = True
                stop.set()

        def idle_exempt() -> bool:
            # While Codex waits on the model it prints nothing, even as tokens stream in; its
            # own stream_idle_timeout_ms (set from stall_timeout_s) catches a stalled stream.
            return idle_guarded and phase == "model"

        relay = asyncio.ensure_future(self._relay_cancel(request.cancel, stop))
        spec = RunSpec(
            argv=tuple(self.argv(request)),
            cwd=request.worktree,
            env=self.env(),
            timeout_s=request.timeout_s,
            stall_timeout_s=request.stall_timeout_s,
            startup_timeout_s=request.startup_timeout_s,
        )
        try:
            outcome = await run_streaming(
                spec,
                on_stdout=on_line,
                on_spawn=spawned,
                cancel=stop,
                idle_exempt=idle_exempt,
            )
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
            scrub_home(self.resolved_codex_home())
        run = stream.run
        session = None
        thread = run.thread_id or request.resume_session_id
        if thread and not outcome.spawn_error:
            need_tokens = bool(
                run.usage_raw is not None and "reasoning_output_tokens" not in run.usage_raw
            ) or (run.usage_raw is None and bool(run.tool_steps or run.messages))
            session = await asyncio.to_thread(
                read_session, thread, sessions, require_tokens=need_tokens
            )
        result = build_result(
            run,
            outcome,
            model=model,
            baseline=baseline,
            session=session,
            sandboxed=self.sandbox != "danger-full-access",
            max_turns=max_turns,
            turn_cap_hit=cap_hit,
            stall_timeout_s=request.stall_timeout_s,
            timeout_s=request.timeout_s,
        )
        _, cumulative, _ = run_usage(run, baseline=baseline, session=session)
        if thread and cumulative is not None:
            self._thread_totals[thread] = cumulative
        if run.non_json_lines:
            log.warning("codex_non_json_lines", task_id=request.task_id, count=run.non_json_lines)
        if (
            request.max_cost_usd is not None
            and request.max_cost_usd > 0
            and result.cost_usd > request.max_cost_usd
        ):
            note = (
                f"cost ${result.cost_usd:.4f} is over the ${request.max_cost_usd:.2f} cap, "
                "which codex cannot enforce"
            )
            emit(
                CanonicalEvent(
                    CanonicalKind.SYSTEM,
                    {"subtype": "max_cost_exceeded", "detail": note},
                    result.session_id,
                )
            )
            result = attrs.evolve(result, reason=f"{result.reason}; {note}".lstrip("; "))
        if result.classification is Classification.SETUP_ERROR:
            fix = credential_fix({"api_key": self.api_key}, unset=(
                "set kwargs.api_key = { env = \"NAME\" } and check the provider's base_url"))
            result = attrs.evolve(result, reason=f"{result.reason}; {fix}")
        undercount = result.undercount_event()
        if undercount is not None:
            emit(undercount)
        return result

    @staticmethod
    async def _relay_cancel(cancel: asyncio.Event | None, stop: asyncio.Event) -> None:
        if cancel is not None:
            await cancel.wait()
            stop.set()


# What codex may leave in CODEX_HOME holding its environment (the API key): removed after
# every run, whatever the configuration said.
ENVIRONMENT_DROPPINGS = ("shell_snapshots",)


def scrub_home(home: Path) -> None:
    """Remove what of the agent's environment codex wrote into ``home`` (shell snapshots)."""
    for name in ENVIRONMENT_DROPPINGS:
        folder = home / name
        if folder.is_dir() and not folder.is_symlink():
            for path in folder.iterdir():
                with contextlib.suppress(OSError):
                    path.unlink()


def known_good_lines() -> list[str]:
    """The packaged JSONL a healthy parser must read (captured from codex 0.169.0)."""
    data = resources.files("oxi_codex").joinpath("data", KNOWN_GOOD_FIXTURE)
    return data.read_text(encoding="utf-8").splitlines()


def self_test() -> str | None:
    """Push the known-good fixture through the parser; what is wrong, or None."""
    run = CodexStream().feed_lines(known_good_lines())
    expected = {
        "input_tokens": 120,
        "cached_input_tokens": 20,
        "output_tokens": 30,
        "reasoning_output_tokens": 7,
    }
    if not run.thread_id:
        return "no thread id in thread.started"
    if run.final_text != "hi from fake server":
        return f"agent_message text read as {run.final_text!r}"
    if run.usage_raw is None or any(run.usage_raw.get(k) != v for k, v in expected.items()):
        return f"turn.completed usage read as {run.usage_raw!r}"
    if run.non_json_lines or run.failure is not None:
        return "a line was not understood"
    return None
