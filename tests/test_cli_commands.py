"""The top-level group imports a built-in command's module only when the command is looked up
(oxi_core/cli.py): its table must name every built-in command where it is defined, and a
plugin's command of the same name still wins, as when every module was imported first."""

from __future__ import annotations

import click
from click.testing import CliRunner

from oxi_core.cli import COMMAND_MODULES, CommandGroup, builtin_commands, cli


def test_the_table_names_every_built_in_command_where_it_is_defined() -> None:
    defined = {name: module for module in set(COMMAND_MODULES.values())
               for name in builtin_commands(module)}
    assert defined == COMMAND_MODULES


def test_help_lists_every_command_with_its_summary() -> None:
    shown = CliRunner().invoke(cli, ["--help"])
    assert shown.exit_code == 0, shown.output
    for name in COMMAND_MODULES:
        assert f"  {name} " in shown.output, name


def test_a_plugin_command_of_a_built_in_name_wins() -> None:
    group = CommandGroup(name="oxi")

    @group.command(name="status")
    def status() -> None:
        """A plugin's own status."""
        click.echo("the plugin's")

    ledger = group.get_command(click.Context(group), "ledger")  # loads ledger.py's commands
    assert isinstance(ledger, click.Group)
    assert group.commands["status"] is status
    assert CliRunner().invoke(group, ["status"]).output == "the plugin's\n"
    assert group.get_command(click.Context(group), "no-such-command") is None
