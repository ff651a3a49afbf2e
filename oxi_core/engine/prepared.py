"""Worktrees made ahead for the next ready tasks (T2-47), so a freed slot's refill does not wait
for a `git worktree add`.

`oxi saturate` keeps up to ``ahead`` of them: after each tick, the first candidates the next
dispatch would take (gates allowing, first attempts only) get their worktree on their branch
from the base as fetched. Nothing is claimed: the ledger does not know of them, another engine
may claim those tasks (and then finds the worktree where it would make one, and reuses it).
The worker of a task this engine claims takes its prepared worktree (`take`), moved to the
base as fetched now if the base moved since. The rest are removed, with their branches, when
their task is no longer among the next (`refresh`) and when saturate stops (`discard_all`),
never while another engine has claimed the task; after a crash the next engine's sweep removes
them (they hold no work).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import attrs

from oxi_core import git
from oxi_core.engine import worktrees
from oxi_core.git_index import fresh_index
from oxi_core.models import GateAction
from oxi_core.repolock import repo_lock
from oxi_core.tasks import TaskStatus

if TYPE_CHECKING:
    import asyncio

    from oxi_core.engine.engine import Engine
    from oxi_core.tasks import Task


@attrs.frozen
class Prepared:
    worktree: worktrees.Worktree
    base_commit: str


class PreparedWorktrees:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ahead = 0  # how many to keep; 0: none (`oxi tick`)
        self._ready: dict[str, Prepared] = {}
        self._making: dict[str, asyncio.Task[Prepared | None]] = {}
        self._refreshing: asyncio.Task[None] | None = None

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._ready or task_id in self._making

    async def take(self, task_id: str) -> Prepared | None:
        """The prepared worktree of a task this engine has just claimed (waiting for one
        being made), for its worker: `use` it, or `discard` it."""
        import asyncio

        making = self._making.get(task_id)
        if making is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(making)
        return self._ready.pop(task_id, None)

    def use(self, found: Prepared, branch: str,
            base_commit: str | None) -> worktrees.Worktree | None:
        """The worktree ``found`` when the claim's worker can work there (still there, on its
        branch), moved to ``base_commit`` (the base as fetched now) if the base moved since it
        was made; None when it cannot. A worker thread's call."""
        tree = found.worktree
        if tree.branch != branch or base_commit is None or not (tree.path / ".git").is_file():
            return None  # made for another title, or gone (another engine's sweep)
        if found.base_commit != base_commit:
            # As a worktree made now would be: on the base as fetched now.
            done = git.git(["reset", "--quiet", "--hard", base_commit], tree.path, check=False)
            if done.returncode != 0:
                return None
            tree = attrs.evolve(tree, fresh_index=fresh_index(
                tree.path, self.engine.config.paths.repo_root))
        return attrs.evolve(tree, prepared=True)

    def schedule_refresh(self) -> None:
        """After a tick: make the next tasks' worktrees in the background (one pass at a
        time), and remove those no longer needed."""
        import asyncio

        if self.ahead <= 0 or (self._refreshing is not None and not self._refreshing.done()):
            return
        self._refreshing = asyncio.create_task(self.refresh())

    async def refresh(self) -> None:
        import asyncio

        engine = self.engine
        wanted = [] if engine.stop_dispatching or engine.paused() else self._next_tasks()
        wanted_ids = {task.id for task in wanted}
        # (One this engine has claimed stays for its worker to take.)
        for task_id in [t for t in self._ready if t not in wanted_ids
                        and t not in engine.workers]:
            await asyncio.to_thread(self.discard, task_id, self._ready.pop(task_id))
        for task in wanted:
            if task.id in self or task.id in engine.workers:
                continue
            making = asyncio.create_task(asyncio.to_thread(self._make, task))
            self._making[task.id] = making
            try:
                made = await making
            except Exception as error:  # a worktree not made ahead is made at claim time
                engine.log.warning("prepare_worktree_failed", task_id=task.id,
                                   error=f"{type(error).__name__}: {error}")
                made = None
            finally:
                del self._making[task.id]
            if made is None:
                continue
            if engine.stop_dispatching:
                await asyncio.to_thread(self.discard, task.id, made)
            else:
                self._ready[task.id] = made

    async def discard_all(self) -> None:
        """When saturate stops: every prepared worktree no claim took, and its branch."""
        import asyncio

        if self._refreshing is not None:
            with contextlib.suppress(Exception):
                await self._refreshing
        while self._ready:
            task_id, found = self._ready.popitem()
            await asyncio.to_thread(self.discard, task_id, found)

    def _next_tasks(self) -> list[Task]:
        """The first ``ahead`` candidates the next dispatch would take: in priority order,
        allowed by the gates now (nothing recorded: dispatch decides), first attempts only
        (a branch to continue or to start over is for the careful path at claim time)."""
        engine = self.engine
        roadmap = engine.roadmap
        if roadmap is None:
            return []
        state = None
        found: list[Task] = []
        for task in engine.candidates(likely_needed=2 * self.ahead):
            if len(found) >= self.ahead:
                break
            item = roadmap.get(task.id)
            if item is None or item.done or task.branch is not None or task.last_error:
                continue
            state = state or engine.engine_state()
            _gate, decision = engine.gate_decision(task, state)
            if decision.action is GateAction.ALLOW:
                found.append(task)
        return found

    def _make(self, task: Task) -> Prepared | None:
        engine = self.engine
        remote = engine.fetch_origin()
        branch = worktrees.branch_name(task.id, task.title)
        if remote.base_commit is None or branch in remote.heads:
            return None
        paths = engine.config.paths
        with repo_lock(paths.state_dir).hold(shared=True):
            tree = worktrees.add_new_worktree(paths, task.id, branch,
                                              base_ref=remote.base_commit)
        return None if tree is None else Prepared(tree, remote.base_commit)

    def discard(self, task_id: str, found: Prepared, *, ours: bool = False) -> None:
        """Remove a prepared worktree and its branch (only while it is still on the commit it
        was made from), unless another engine has claimed the task meanwhile: then the
        worktree is that claim's. ``ours``: this engine's claim, whose worker will not use
        it; a worker thread's call."""
        engine = self.engine
        paths = engine.config.paths
        with repo_lock(paths.state_dir).hold():
            task = engine.ledger.task(task_id)
            if not ours and task is not None and task.status is TaskStatus.DISPATCHED:
                return
            worktrees.remove_worktree(paths, found.worktree.path, branch=found.worktree.branch,
                                      remote=engine.config.policy.remote, force=True)
            git.git(["update-ref", "-d", f"refs/heads/{found.worktree.branch}",
                     found.base_commit], paths.repo_root, check=False)
