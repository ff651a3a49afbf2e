"""What every command shares: the --config path, the config or the ledger once loaded, and the
JSON conventions of docs/json.md (every document carries ``version`` and ``command``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from oxi_core.config import OxiConfig
    from oxi_core.ledger import Ledger
    from oxi_core.locate import Located

# The shape version of every --json document and --jsonl line. It changes only when a field is
# removed or changes meaning; new fields may appear in any version.
JSON_VERSION = 1

F = TypeVar("F", bound=Callable[..., Any])


# Whether this process ends when its command does (the console script, not a caller such as a
# test's CliRunner): then the heap is frozen once the configuration or the ledger is loaded.
_process_is_command = False


def command_process() -> None:
    """Called by the console script: this process runs one command and exits."""
    global _process_is_command
    _process_is_command = True


def freeze_loaded() -> None:
    """What is loaded by now (modules, classes, the plugins) lives as long as the process:
    gc.freeze() keeps every later full collection, and the one at exit, from walking it
    again (about 5 ms of an idle `oxi tick`). Never in a longer-lived caller, whose garbage
    of the moment would be kept for good."""
    if _process_is_command:
        import gc

        gc.freeze()


class CliState:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: OxiConfig | None = None
        self._located: Located | None = None
        self._ledger: Ledger | None = None

    def config(self, *, secrets: bool = True) -> OxiConfig:
        """oxi.toml with every plugin built (what tick, saturate and config check need).
        ``secrets=False``: a plugin whose secret is not in the environment is left unbuilt
        (for commands that never run an agent)."""
        if self._config is None:
            from oxi_core.config import load_config

            configure_logging()
            self._config = load_config(self.config_path, secrets=secrets)
            freeze_loaded()
        if secrets:
            self._config.require_secrets()
        return self._config

    def located(self) -> Located:
        """Where the ledger and roadmap are, from [adapter] alone: no plugin, no secret."""
        if self._located is None:
            from oxi_core.locate import locate

            self._located = locate(self.config_path)
            if self._located.problem is not None:
                click.echo(f"oxi: warning: oxi.toml cannot be loaded, so the ledger beside it "
                           f"is used: {self._located.problem}", err=True)
        return self._located

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from oxi_core.locate import open_ledger

            self._ledger = open_ledger(self.located())
            freeze_loaded()
        return self._ledger


pass_state = click.make_pass_decorator(CliState)


def configure_logging() -> None:
    from oxi_core import log

    log.configure(level=os.environ.get("OXI_LOG_LEVEL", "info"))


# (For the commands that list things: status, ledger tail, shadow report, task list.)
limit_option = click.option("-n", "--limit", "limit", type=click.IntRange(min=0), default=None,
                            help="How many to show.")


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document (shapes: docs/json.md).")(function)


def jsonl_option(what: str) -> Callable[[F], F]:
    return click.option("--jsonl", "as_jsonl", is_flag=True,
                        help=f"Print JSON lines, one per {what} (docs/json.md).")


def json_document(command: str, value: Mapping[str, Any]) -> dict[str, Any]:
    return {"version": JSON_VERSION, "command": command, **value}


def emit_json(command: str, value: Mapping[str, Any]) -> None:
    """One JSON document for ``oxi COMMAND --json``."""
    import json

    click.echo(json.dumps(json_document(command, value), indent=2, sort_keys=True, default=str))


def emit_json_line(command: str, value: Mapping[str, Any]) -> None:
    """One line of ``oxi COMMAND --jsonl`` (flushed: a reader may be waiting for it)."""
    import json

    click.echo(json.dumps(json_document(command, value), sort_keys=True, default=str))
