"""`oxi roadmap list|lint|prune`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from oxi_core.commands.common import CliState, emit_json, json_option, pass_state
from oxi_core.errors import EXIT_FAILED

if TYPE_CHECKING:
    from oxi_core.config import OxiConfig


def _roadmap_path(state: CliState, file: Path | None) -> Path:
    return file if file is not None else state.located().paths.roadmap


def _default_ref(repo: Path, remote: str, base: str) -> str:
    from oxi_core import git

    return f"{remote}/{base}" if git.rev_parse(f"{remote}/{base}", repo) else base


def _fetch_base(config: OxiConfig) -> None:
    """Bring the base branch's merged commits (the forge merges them remotely) into
    <remote>/<base>, with the forge's credentials. A failure is said and the last fetch used."""
    from oxi_core import forge_extras, git
    from oxi_core.errors import OxiError

    remote, base = config.policy.remote, config.policy.base_branch
    # A forge left unbuilt (its secret not set: prune needs none) leaves git to its own
    # credentials.
    forge = config.instances["forges"].get(config.roles.forge or "")
    try:
        git.git(["fetch", "--quiet", remote, f"+refs/heads/{base}:refs/remotes/{remote}/{base}"],
                config.paths.repo_root, env=forge_extras.git_env(forge))
    except OxiError as error:
        click.echo(f"oxi: warning: could not fetch {remote}/{base} ({error}); "
                   "reading it as last fetched", err=True)


def add_commands(cli: click.Group) -> None:
    file_option = click.option(
        "--file", "file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="A roadmap file to read instead of the configured one.",
    )

    @cli.group(name="roadmap")
    def roadmap_group() -> None:
        """Read, check and prune roadmap.md."""

    @roadmap_group.command(name="list")
    @file_option
    @json_option
    @click.option("--all", "include_done", is_flag=True, help="Include the Done section's ids.")
    @pass_state
    def roadmap_list(state: CliState, file: Path | None, as_json: bool,
                     include_done: bool) -> None:
        """Each item: id, tier, title, subtitle, section, line, done."""
        from oxi_core.roadmap import load_roadmap

        roadmap = load_roadmap(_roadmap_path(state, file))
        items = [i for i in roadmap.items if include_done or not i.done]
        if as_json:
            emit_json("roadmap list", {"items": [i.as_json() for i in items],
                       "done_ids": sorted(roadmap.done_ids),
                       "warnings": [str(w) for w in roadmap.warnings]})
            return
        for item in items:
            mark = "done" if item.done else f"T{item.tier}"
            click.echo(f"{item.id:<8} {mark:<4} {item.title}")
        for warning in roadmap.warnings:
            click.echo(f"warning: {warning}", err=True)

    @roadmap_group.command(name="lint")
    @file_option
    @json_option
    @pass_state
    def roadmap_lint(state: CliState, file: Path | None, as_json: bool) -> None:
        """Report problems; exit 1 when any is an error."""
        from oxi_core.roadmap import load_roadmap

        path = _roadmap_path(state, file)
        roadmap = load_roadmap(path)
        errors = len(roadmap.errors)
        if as_json:
            emit_json("roadmap lint", {
                "path": str(path), "open_items": len(roadmap.open_items), "errors": errors,
                "problems": [{"line": w.line, "severity": str(w.severity), "message": w.message,
                              "item": w.item_id} for w in roadmap.warnings]})
        else:
            for warning in roadmap.warnings:
                click.echo(f"{path}:{warning.line}: {warning.severity}: {warning.message}")
            click.echo(f"{len(roadmap.open_items)} open items, {len(roadmap.warnings)} problems "
                       f"({errors} errors)")
        if errors:
            raise click.exceptions.Exit(EXIT_FAILED)

    @roadmap_group.command(name="prune")
    @click.option("--dry-run", is_flag=True, help="Print what would be removed; write nothing.")
    @click.option("--ref", default=None,
                  help="The branch to read (default: <remote>/<base>, else <base>).")
    @click.option("--no-fetch", is_flag=True,
                  help="Read <remote>/<base> as last fetched; do not fetch it first.")
    @json_option
    @pass_state
    def roadmap_prune(state: CliState, dry_run: bool, ref: str | None, no_fetch: bool,
                      as_json: bool) -> None:
        """Remove items whose T-id appears in a substantive merged commit on main."""
        from oxi_core.roadmap import prunable_ids, remove_items

        config = state.config(secrets=False)
        if ref is None and not no_fetch:
            _fetch_base(config)
        path = config.paths.roadmap
        base = ref or _default_ref(config.paths.repo_root, config.policy.remote,
                                   config.policy.base_branch)
        text = path.read_bytes().decode("utf-8")
        relative = str(path.relative_to(config.paths.repo_root))
        ids = prunable_ids(config.paths.repo_root, text, ref=base, roadmap_path=relative)
        if ids and not dry_run:
            path.write_bytes(remove_items(text, ids).encode("utf-8"))
            from oxi_core.ledger import events as ev

            config.ledger.append(ev.ROADMAP_PRUNED, payload={"ids": ids, "ref": base})
        if as_json:
            emit_json("roadmap prune", {"ids": ids, "ref": base, "dry_run": dry_run,
                                        "path": str(path)})
        elif not ids:
            click.echo("nothing to prune")
        else:
            click.echo(("would remove " if dry_run else "removed ") + ", ".join(ids))
