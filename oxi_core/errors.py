"""Errors meant for the operator. Every message says what went wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The command line's exit codes (docs/json.md lists them for operators and scripts).
EXIT_OK = 0
EXIT_FAILED = 1  # the command could not do what was asked, or a check found errors
EXIT_USAGE = 2  # the command line or oxi.toml is invalid
EXIT_INTERRUPTED = 130  # Ctrl-C


class OxiError(Exception):
    """Base class: the CLI prints these as one clean line and exits non-zero."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class ConfigError(OxiError):
    """oxi.toml is invalid: the message names the file (and line), the table, the key and what
    was expected."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        table: str | None = None,
        key: str | None = None,
        hint: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.table = table
        self.key = key
        self.line = line
        self.problem = message
        where = ": ".join(
            part
            for part in (
                f"{file}:{line}" if file and line else file,
                f"[{table}]" if table else None,
                f"key {key!r}" if key else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message, hint=hint)

    def at_line(self, line: int | None) -> ConfigError:
        """The same error, naming the line of oxi.toml it is about."""
        if line is None or self.line is not None:
            return self
        located = ConfigError(self.problem, file=self.file, table=self.table, key=self.key,
                              hint=self.hint, line=line)
        located.__cause__ = self.__cause__
        return located


class NotARepository(OxiError):
    """No oxi.toml was found and the folder is not inside a git work tree."""

    exit_code = EXIT_USAGE


class PluginError(OxiError):
    """A plugin could not be loaded or registered a name twice."""


class LedgerError(OxiError):
    """The ledger cannot be opened or migrated."""


class IllegalTransition(OxiError):
    """A task was asked to move between two statuses the state machine does not connect."""

    def __init__(self, task_id: str, current: str, target: str) -> None:
        self.task_id = task_id
        self.current = current
        self.target = target
        super().__init__(
            f"task {task_id} cannot go from {str(current)!r} to {str(target)!r}",
            hint="see docs/task-states.md for the allowed transitions",
        )


class RoadmapError(OxiError):
    """roadmap.md cannot be read at all."""


class GitError(OxiError):
    """A git command failed."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        # git ends many refusals with advice ("hint: ..."); what went wrong comes before it
        # ("! [rejected] HEAD -> x (fetch first)", "error: failed to push some refs").
        said = [line.strip() for line in stderr.strip().splitlines()
                if line.strip() and not line.startswith("hint:")]
        tail = " / ".join(said[-2:]) if said else (stderr.strip().splitlines() or ["no output"])[-1]
        super().__init__(f"`{' '.join(argv)}` exited {returncode}: {tail}")


class WorktreeError(OxiError):
    """A worktree path or branch name was refused (escape, symlink) or could not be created."""


class AlreadyRunning(OxiError):
    """Another `oxi saturate` holds the PID file."""


class SetupError(OxiError):
    """oxi cannot work as configured (a rejected credential, a binary of the wrong version).

    Retrying would fail the same way for every task, so the engine pauses itself instead of
    failing tasks: nothing is marked failed, and the message says what to fix.
    """


class AgentSetupError(SetupError):
    """An agent cannot run as configured (wrong binary version, output format drift)."""


class ForgeSetupError(SetupError):
    """The forge refuses oxi's credentials or access (a 401, a token without access to the
    repository): the message names where the credential came from."""


class GitTooOld(SetupError):
    """The git on PATH cannot do what the local forge needs (`git merge-tree --write-tree`,
    git 2.38): a merge is refused before it starts, and the engine pauses."""


class ForgeUnavailable(OxiError):
    """The forge cannot answer now (a rate limit, an outage): try again on a later tick.

    ``retry_at`` (epoch seconds), when known, is the earliest moment worth trying again.
    """

    def __init__(self, message: str, *, hint: str | None = None,
                 retry_at: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_at = retry_at


class AutoMergeUnavailable(OxiError):
    """The forge will not arm auto-merge on this repository (a repository setting, no branch
    protection). ``reason`` is the forge's own words; the engine records it, notifies, and
    then waits or merges directly as ``[engine] auto_merge_fallback`` says."""

    def __init__(self, reason: str, *, hint: str | None = None) -> None:
        super().__init__(reason, hint=hint)
        self.reason = reason


class SourceError(OxiError):
    """An auto-improve source could not read this scan: unreachable, refused, malformed, a
    layout it does not know, its tool failed or timed out.

    The scan records it as one ``AUTO_IMPROVE_SOURCE_FAILED`` event (``payload()``) and goes on
    with the other sources; the source is not retried in the same scan. ``returncode`` is the
    source's subprocess's exit status, when it ran one (None when it never started); the CLI's
    own exit code stays ``OxiError.exit_code``.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        returncode: int | None = None,
        details: Mapping[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        self.source = source
        self.reason = message
        self.returncode = returncode
        self.details = dict(details or {})
        super().__init__(f"source {source}: {message}", hint=hint)

    def payload(self) -> dict[str, Any]:
        """What the failure event records: the source, the reason, the exit code, details."""
        return {"source": self.source, "reason": self.reason, "exit_code": self.returncode,
                "hint": self.hint, **({"details": self.details} if self.details else {})}
