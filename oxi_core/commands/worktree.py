"""`oxi worktree list|prune`: the task worktrees left under .oxi/worktrees/, and clearing them
without ever losing a commit that exists nowhere else."""

from __future__ import annotations

import click

from oxi_core.commands.common import CliState, emit_json, json_option, pass_state
from oxi_core.errors import EXIT_FAILED


def add_commands(cli: click.Group) -> None:
    @cli.group(name="worktree")
    def worktree_group() -> None:
        """The task worktrees under .oxi/worktrees/."""

    @worktree_group.command(name="list")
    @json_option
    @pass_state
    def worktree_list(state: CliState, as_json: bool) -> None:
        """Each worktree: its task and status, its branch, and what removing it would lose."""
        from oxi_core.engine.leftovers import busy_task_ids
        from oxi_core.engine.worktrees import list_worktrees
        from oxi_core.ledger import Ledger

        config = state.config(secrets=False)
        with Ledger(config.paths.ledger) as ledger:
            busy = busy_task_ids(ledger)
            rows = []
            for leftover in list_worktrees(config.paths, remote=config.policy.remote):
                task = ledger.task(leftover.path.name)
                rows.append({"task": leftover.path.name, "path": str(leftover.path),
                             "branch": leftover.branch, "holds": leftover.holds,
                             "status": str(task.status) if task else None,
                             "busy": leftover.path.name in busy})
        if as_json:
            emit_json("worktree list", {"worktrees": rows})
            return
        if not rows:
            click.echo("no worktrees")
        for row in rows:
            what = "in use by a worker" if row["busy"] else (row["holds"] or "nothing unpushed")
            click.echo(f"{row['task']:<8} {row['status'] or '-':<10} {row['branch'] or '-'}  "
                       f"{what}  {row['path']}")

    @worktree_group.command(name="prune")
    @click.option("--discard-uncommitted", is_flag=True,
                  help="Also remove worktrees whose only unsaved work is uncommitted changes "
                       "(never one holding commits the remote lacks).")
    @json_option
    @pass_state
    def worktree_prune(state: CliState, discard_uncommitted: bool, as_json: bool) -> None:
        """Remove every worktree no worker uses whose work is all on the remote; exit 1 when
        some were kept (each is named, with why)."""
        from oxi_core.engine.leftovers import busy_task_ids, record_sweep
        from oxi_core.engine.worktrees import UNCOMMITTED, sweep_worktrees
        from oxi_core.ledger import Ledger
        from oxi_core.repolock import repo_lock

        config = state.config(secrets=False)
        with Ledger(config.paths.ledger) as ledger:
            with repo_lock(config.paths.state_dir).hold():
                busy = busy_task_ids(ledger)  # under the lock: see Engine's sweep
                swept = sweep_worktrees(config.paths, remote=config.policy.remote, busy=busy,
                                        discard_uncommitted=discard_uncommitted)
            record_sweep(ledger, swept, by="operator")
        kept = [(path, reason) for path, reason in swept if reason]
        if as_json:
            emit_json("worktree prune", {
                "removed": [path.name for path, reason in swept if not reason],
                "kept": [{"task": path.name, "reason": reason} for path, reason in kept],
                "in_use": sorted(busy)})
        else:
            for path, reason in swept:
                click.echo(f"kept {path.name}: {reason}" if reason else f"removed {path.name}")
            for name in sorted(busy):
                click.echo(f"left {name}: a worker may be using it")
            if not swept and not busy:
                click.echo("nothing to prune")
            if any(reason == UNCOMMITTED for _path, reason in kept):
                click.echo("uncommitted changes are kept; look at them, then pass "
                           "--discard-uncommitted to remove those worktrees anyway")
        if kept:
            raise click.exceptions.Exit(EXIT_FAILED)
