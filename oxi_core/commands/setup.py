"""`oxi init`, `oxi config check|schema`, `oxi doctor`, `oxi plugins`: setting oxi up."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from oxi_core.commands.common import CliState, emit_json, json_option, pass_state
from oxi_core.errors import EXIT_FAILED

if TYPE_CHECKING:
    from oxi_core.config import OxiConfig
    from oxi_core.doctor import Finding


def add_commands(cli: click.Group) -> None:
    @cli.command(name="plugins")
    @json_option
    def plugins_command(as_json: bool) -> None:
        """Installed plugins and repository adapters: distribution, version, what they add."""
        from oxi_core.plugins import load_plugins, plugin_listing

        listing = plugin_listing(load_plugins())
        if as_json:
            emit_json("plugins", listing)
            return
        for row in listing["plugins"]:
            click.echo(f"{row['distribution']} {row['version']}  ({row['name']})")
            click.echo(f"  hooks: {', '.join(row['hooks']) or 'none'}")
            for kind, names in row["registered"].items():
                click.echo(f"  {kind}: {', '.join(names)}")
        for adapter in listing["adapters"]:
            click.echo(f"{adapter['distribution']} {adapter['version']}  "
                       f"(repository adapter {adapter['name']}: {adapter['class']})")
        for failure in listing["failures"]:
            click.echo(f"FAILED {failure['distribution']} {failure['version']} "
                       f"({failure['name']}): {failure['error']}")

    @cli.command(name="init")
    @click.option("--force", is_flag=True, help="Overwrite an existing oxi.toml.")
    @click.option("--agent", type=click.Choice(["claude", "codex", "exec"]), default=None,
                  help="The worker (default: claude or codex when on PATH, else a script).")
    @json_option
    @click.argument("folder", type=click.Path(path_type=Path, file_okay=False), default=".")
    def init_command(force: bool, agent: str | None, as_json: bool, folder: Path) -> None:
        """Write oxi.toml for this repository (its agents and test command detected), a
        starter roadmap.md when there is none, and ignore .oxi/ in git."""
        from oxi_core.starter import AGENT_SCRIPT, init_repository

        result = init_repository(folder, force=force, agent=agent)
        found = result.detected
        worker = found.binary or (f"./{AGENT_SCRIPT}" if found.worker == "exec" else None)
        if as_json:
            emit_json("init", {
                "root": str(found.root), "written": list(result.written),
                "worker": {"type": found.worker, "program": worker},
                "critic": list(found.test.argv) if found.test else None,
                "remote": found.remote, "base_branch": found.base_branch,
                "todo": list(result.todo)})
            return
        click.echo(f"oxi init: wrote {', '.join(result.written)} in {found.root}")
        click.echo(f"  worker: {found.worker} ({worker or 'not found on PATH'})")
        click.echo("  critic: " + (f"{' '.join(found.test.argv)} ({found.test.why})"
                                   if found.test else "none found"))
        click.echo(f"  merges into: {found.remote or '(no remote)'}/{found.base_branch}")
        if result.todo:
            click.echo("still to do:")
            for item in result.todo:
                click.echo(f"  - {item}")
        click.echo("then: `oxi config check`")

    @cli.group(name="config")
    def config_group() -> None:
        """Check oxi.toml, and list every key it takes."""

    @config_group.command(name="check")
    @json_option
    @pass_state
    def config_check(state: CliState, as_json: bool) -> None:
        """Load oxi.toml, build every plugin, and run the fast offline checks."""
        _check(state.config(), deep=False, as_json=as_json, command="config check")

    @config_group.command(name="schema")
    @click.option("--markdown", is_flag=True, help="Print docs/configuration.md's text.")
    @json_option
    def config_schema(markdown: bool, as_json: bool) -> None:
        """Every oxi.toml key the installed oxi and plugins take: type, default, meaning."""
        import attrs

        from oxi_core.registry import get_registry
        from oxi_core.schema import installed_adapters, schema
        from oxi_core.schema import markdown as render

        registry = get_registry()
        registry.load_all()
        sections = schema(registry, adapters=installed_adapters())
        if as_json:
            emit_json("config schema", {"sections": [attrs.asdict(s) for s in sections]})
        elif markdown:
            click.echo(render(sections), nl=False)
        else:
            for section in sections:
                click.echo(f"{section.title}  ({section.source})")
                for key in section.keys:
                    click.echo(f"  {key.name}: {key.type} = {key.default}  {key.meaning}")

    @cli.command(name="doctor")
    @json_option
    @pass_state
    def doctor_command(state: CliState, as_json: bool) -> None:
        """`oxi config check` plus the slow checks (self-tests, health probes)."""
        _check(state.config(), deep=True, as_json=as_json, command="doctor")


def config_summary(config: OxiConfig) -> dict[str, Any]:
    import attrs

    return {
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


def _check(config: OxiConfig, *, deep: bool, as_json: bool, command: str) -> None:
    import attrs

    from oxi_core.doctor import Severity, run_checks

    findings = run_checks(config, deep=deep)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    # How an agent's processes are held (probed: only the doctor spends that).
    scope = _process_scope() if deep else None
    if as_json:
        extra = {"process_scope": scope} if scope is not None else {}
        emit_json(command, {**config_summary(config), **extra, "ok": not errors,
                            "findings": [f.as_json() for f in findings]})
    else:
        click.echo(f"config:  {config.path or '(embedded defaults)'}")
        click.echo(f"repo:    {config.paths.repo_root}")
        click.echo(f"roadmap: {config.paths.roadmap}")
        click.echo(f"ledger:  {config.paths.ledger}")
        for kind, specs in config.specs.items():
            for name, spec in specs.items():
                click.echo(f"{kind}.{name}: {spec.type} ({spec.distribution})")
        roles = ", ".join(f"{k}={v}" for k, v in attrs.asdict(config.roles).items() if v)
        click.echo(f"roles:   {roles}")
        if scope is not None:
            click.echo(f"process scope: {scope['description']}")
        _print_findings(findings)
        click.echo("ok" if not errors else
                   f"{len(errors)} error{'s' if len(errors) != 1 else ''}: the first tick "
                   "would fail; fix them and run this again")
    if errors:
        raise click.exceptions.Exit(EXIT_FAILED)


def _process_scope() -> dict[str, str | None]:
    from oxi_core.agentic.cgroup import subtree

    found = subtree()
    return {"kind": "cgroup v2" if found.path else "environment marker",
            "cgroup": str(found.path) if found.path else None, "reason": found.reason or None,
            "description": found.describe()}


def _print_findings(findings: list[Finding]) -> None:
    for finding in findings:
        click.echo(finding.line())
