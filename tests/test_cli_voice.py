"""One CLI voice: every error is `oxi: error: ...` with a documented exit code, every command
takes --json, `-n` means one thing, help text names no internal roadmap ids, and shell
completion works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from oxi_core.cli import build_cli
from tests.conftest import roadmap
from tests.unattended.support import run_oxi

OXI = Path(sys.executable).with_name("oxi")


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        if name == "v3":
            continue  # the alias group: the same commands again
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def all_commands(group: click.Group) -> Iterator[click.Command]:
    ctx = click.Context(group)
    yield group
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if name == "v3" or command is None:
            continue
        if isinstance(command, click.Group):
            yield from all_commands(command)
        else:
            yield command


def test_a_usage_error_is_one_oxi_error_line_with_exit_2() -> None:
    result = run_oxi(["tick", "--bogus"], cwd=Path.cwd())

    assert result.returncode == 2
    assert result.stderr == "oxi: error: No such option '--bogus' (see `oxi tick --help`)\n"
    assert result.stdout == ""


def test_an_operator_error_is_one_oxi_error_line_with_exit_1(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "first", "notes")))
    assert run_oxi(["tick"], cwd=repo.root).returncode == 0

    not_held = run_oxi(["task", "release", "T1-5"], cwd=repo.root)
    unknown = run_oxi(["task", "retry", "T9-9"], cwd=repo.root)

    assert not_held.returncode == 1
    assert not_held.stderr == ("oxi: error: T1-5 is not held (`oxi task show T1-5` says "
                               "why)\n")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("oxi: error: no task T9-9 in the ledger")
    assert len(unknown.stderr.splitlines()) == 1


def test_every_command_takes_json() -> None:
    missing = [" ".join(path) for path, command in leaf_commands(build_cli())
               if not any("--json" in param.opts for param in command.params
                          if isinstance(param, click.Option))]
    assert missing == []


def test_dash_n_means_how_many_to_show_everywhere() -> None:
    meanings = {}
    for path, command in leaf_commands(build_cli()):
        for param in command.params:
            if isinstance(param, click.Option) and "-n" in param.opts:
                meanings[" ".join(path)] = (param.name, param.help)
    assert meanings  # status, ledger tail, shadow report, task list
    assert set(meanings.values()) == {("limit", "How many to show.")}, meanings


def test_help_text_names_no_internal_roadmap_ids_and_explains_v3() -> None:
    cli = build_cli()
    for command in all_commands(cli):
        texts = [command.help or "", command.short_help or "", command.epilog or ""]
        texts += [param.help or "" for param in command.params if isinstance(param, click.Option)]
        for text in texts:
            assert not re.search(r"\bT\d+-[A-Z]*\d+\b", text), (command.name, text)
    v3_help = run_oxi(["v3", "--help"], cwd=Path.cwd()).stdout
    assert "`oxi v3 COMMAND` is `oxi COMMAND`" in " ".join(v3_help.split())


def test_top_level_help_documents_exit_codes_json_and_completion() -> None:
    help_text = run_oxi(["--help"], cwd=Path.cwd()).stdout
    assert "Exit codes: 0 ok; 1 failed" in help_text
    assert "docs/json.md" in help_text
    assert '_OXI_COMPLETE=bash_source oxi' in help_text


def test_shell_completion_completes_commands_through_the_console_script() -> None:
    env = {**os.environ, "COMP_WORDS": "oxi ta", "COMP_CWORD": "1",
           "_OXI_COMPLETE": "bash_complete"}
    done = subprocess.run([str(OXI)], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plain,task"]
