"""The ``oxi`` command line. ``oxi v3 <command>`` is an alias group with the same commands.

Start-up matters (``oxi --help`` is run by shells and service units): this module imports
click only; a command's module is imported when the command is looked up, and every command
imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

from oxi_core import __version__
from oxi_core.commands import common

CliState = common.CliState


EPILOG = """\b
--json prints one JSON document, --jsonl JSON lines; docs/json.md has every shape.
Exit codes: 0 ok; 1 failed, or a check found errors; 2 bad command line or oxi.toml;
130 interrupted.
Shell completion: eval "$(_OXI_COMPLETE=bash_source oxi)" in ~/.bashrc
(zsh_source, fish_source for zsh and fish).
"""


# Where each built-in command is defined: a command's module is imported when the command is
# looked up (to run it, or for --help to list it), so `oxi tick` loads tick's alone.
COMMAND_MODULES = {
    "auto-improve": "auto_improve", "dashboard": "dashboard", "status": "ledger",
    "ledger": "ledger", "pause": "ledger", "resume": "ledger", "tick": "loop",
    "saturate": "loop", "probe": "loop", "shadow": "loop", "roadmap": "roadmap", "route": "route",
    "plugins": "setup", "init": "setup", "doctor": "setup", "config": "setup",
    "task": "tasks", "worktree": "worktree",
}


class CommandGroup(click.Group):
    """oxi's top-level group: the built-in commands of COMMAND_MODULES, added from their module
    on first look-up, and whatever plugins add (register_commands)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            for name, command in builtin_commands(module).items():
                self.commands.setdefault(name, command)  # a plugin's command of that name wins
        return self.commands.get(cmd_name)


def builtin_commands(module: str) -> Mapping[str, click.Command]:
    """The top-level commands ``oxi_core.commands.<module>`` defines, by name."""
    from importlib import import_module

    group = click.Group()
    import_module(f"oxi_core.commands.{module}").add_commands(group)
    return group.commands


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EPILOG)
@click.version_option(__version__, "--version", prog_name="oxi")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    envvar="OXI_CONFIG", help="oxi.toml to use (default: ./oxi.toml or a parent's).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """oxi runs coding agents on a git repository unattended: roadmap in, reviewed PRs out."""
    if not isinstance(ctx.obj, CliState):
        ctx.obj = CliState(config_path)


class AliasGroup(click.Group):
    """A group that exposes another group's commands under a second name (``oxi v3 ...``)."""

    def __init__(self, target: click.Group, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in self.target.list_commands(ctx) if name != self.name]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == self.name:
            return None
        return self.target.get_command(ctx, cmd_name)


cli.add_command(AliasGroup(
    cli, name="v3",
    help="`oxi v3 COMMAND` is `oxi COMMAND`: the spelling of oxi's original specification, "
         "kept so service units written for it keep working."))


# -- entry point ---------------------------------------------------------------------------


def _should_reraise() -> bool:
    flag = os.environ.get("OXI_RAISE_ERRORS")
    if flag is not None:
        return flag == "1"
    return "PYTEST_CURRENT_TEST" in os.environ


def _register_plugin_commands() -> None:
    from oxi_core.plugins import load_plugins

    load_plugins().manager.hook.register_commands(cli=cli)


_commands_registered = False


def build_cli() -> click.Group:
    global _commands_registered
    if not _commands_registered:
        _commands_registered = True
        _register_plugin_commands()
    return cli


def main(argv: list[str] | None = None) -> NoReturn:
    """The console script: one voice for every error (`oxi: error: ...` on stderr) and the
    exit codes of docs/json.md."""
    from oxi_core.errors import EXIT_INTERRUPTED, OxiError

    if argv is None:  # the console script itself (tests pass argv): one command, then exit
        common.command_process()
    group = build_cli()
    try:
        # Without standalone mode click returns a command's `Exit` code instead of exiting.
        code = group.main(args=argv, prog_name="oxi", standalone_mode=False)
    except OxiError as error:
        if _should_reraise():
            raise
        from oxi_core.log import redact_text

        fail(redact_text(str(error)), error.exit_code)
    except click.exceptions.Abort:
        fail("interrupted", EXIT_INTERRUPTED)
    except click.UsageError as error:
        where = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
        fail(f"{error.format_message().rstrip('.')}{where}", error.exit_code)
    except click.ClickException as error:
        fail(error.format_message(), error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, exit_code: int) -> NoReturn:
    click.echo(f"oxi: error: {message}", err=True)
    sys.exit(exit_code)
