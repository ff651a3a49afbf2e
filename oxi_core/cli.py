"""The ``oxi`` command line. ``oxi v3 <command>`` is an alias group with the same commands.

Start-up matters (``oxi --help`` is run by shells and service units): this module imports
click and the plugin manager only; every command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from oxi_core import __version__
from oxi_core.commands import common

pass_state = common.pass_state
emit_json = common.emit_json
CliState = common.CliState


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


cli.add_command(AliasGroup(cli, name="v3", help="The same commands (for service units)."))


# -- plugins and configuration -------------------------------------------------------------


@cli.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins: distribution, version, hooks, registered names."""
    from oxi_core.plugins import load_plugins
    from oxi_core.registry import get_registry

    loaded = load_plugins()
    registry = get_registry()
    rows: list[dict[str, Any]] = [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "hooks": loaded.hooks_of(name),
            "registered": registry.by_plugin(name),
        }
        for name, info in sorted(loaded.infos.items(), key=lambda item: (not item[1].builtin,
                                                                          item[0]))
    ]
    failures = [
        {"name": f.name, "distribution": f.distribution, "version": f.version, "error": f.error}
        for f in registry.failures
    ]
    if as_json:
        emit_json({"plugins": rows, "failures": failures})
        return
    for row in rows:
        click.echo(f"{row['distribution']} {row['version']}  ({row['name']})")
        click.echo(f"  hooks: {', '.join(row['hooks']) or 'none'}")
        for kind, names in row["registered"].items():
            click.echo(f"  {kind}: {', '.join(names)}")
    for failure in failures:
        click.echo(f"FAILED {failure['distribution']} {failure['version']} "
                   f"({failure['name']}): {failure['error']}")


@cli.command(name="init")
@click.option("--force", is_flag=True, help="Overwrite an existing oxi.toml.")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False), default=".")
def init_command(force: bool, folder: Path) -> None:
    """Write a commented starter oxi.toml."""
    from oxi_core.starter import STARTER_TOML

    target = folder / "oxi.toml"
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; pass --force to overwrite it")
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(STARTER_TOML, encoding="utf-8")
    click.echo(f"wrote {target}; edit it, then run `oxi config check`")


@cli.group(name="config")
def config_group() -> None:
    """Inspect oxi.toml."""


@config_group.command(name="check")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
def config_check(state: CliState, as_json: bool) -> None:
    """Load oxi.toml and every plugin it names, and report."""
    import attrs

    config = state.config()
    # Checks too slow for every load (a binary's version, its output format) run here.
    for instances in config.instances.values():
        for instance in instances.values():
            validate = getattr(instance, "validate", None)
            if callable(validate):
                validate()
    report: dict[str, Any] = {
        "config": str(config.path) if config.path else None,
        "adapter": type(config.adapter).__module__ + "." + type(config.adapter).__qualname__,
        "paths": {k: str(v) for k, v in attrs.asdict(config.paths).items()},
        "policy": attrs.asdict(config.policy),
        "roles": attrs.asdict(config.roles),
        "instances": {
            kind: {name: {"type": spec.type, "distribution": spec.distribution,
                          "trust": spec.trust} for name, spec in specs.items()}
            for kind, specs in config.specs.items() if specs
        },
        "worktree_hooks": sorted(config.worktree.hooks),
    }
    if as_json:
        emit_json(report)
        return
    click.echo(f"config:  {report['config'] or '(embedded defaults)'}")
    click.echo(f"adapter: {report['adapter']}")
    click.echo(f"repo:    {config.paths.repo_root}")
    click.echo(f"roadmap: {config.paths.roadmap}")
    click.echo(f"ledger:  {config.paths.ledger}")
    for kind, specs in config.specs.items():
        for name, spec in specs.items():
            click.echo(f"{kind}.{name}: {spec.type} ({spec.distribution})")
    roles = ", ".join(f"{k}={v}" for k, v in attrs.asdict(config.roles).items() if v)
    click.echo(f"roles:   {roles}")
    click.echo("ok")


from oxi_core.commands import auto_improve as _auto_improve  # noqa: E402
from oxi_core.commands import loop as _loop  # noqa: E402  (click only; defined after cli)
from oxi_core.commands import roadmap as _roadmap  # noqa: E402
from oxi_core.commands import route as _route  # noqa: E402
from oxi_core.commands import worktree as _worktree  # noqa: E402

_loop.add_commands(cli)
_loop.add_daemon_commands(cli)
_loop.add_shadow_commands(cli)
_roadmap.add_commands(cli)
_auto_improve.add_commands(cli)
_route.add_commands(cli)
_worktree.add_commands(cli)


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
    from oxi_core.errors import OxiError

    group = build_cli()
    try:
        group.main(args=argv, prog_name="oxi", standalone_mode=False)
    except OxiError as error:
        if _should_reraise():
            raise
        from oxi_core.log import redact_text

        click.echo(f"oxi: error: {redact_text(str(error))}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    sys.exit(0)
