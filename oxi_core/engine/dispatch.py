"""One worker: a claimed task from worktree to merged (or requeued) pull request.

Order matters for never losing work: the worktree is removed only after its branch is pushed,
and a worktree holding unpushed work is kept and named in an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core import forge_extras, git
from oxi_core.agentic.rates import cost_usd
from oxi_core.agentic.scope import claim_scope, enter_claim_scope
from oxi_core.agentic.types import CanonicalEvent, DispatchRequest, DispatchResult, Usage
from oxi_core.engine import worktrees
from oxi_core.engine.droppings import dropping_root, excludes_file, split_droppings
from oxi_core.engine.hooks import HookOutcome, run_hook
from oxi_core.engine.prompt import build_prompt, repository_conventions
from oxi_core.engine.reaper import WORKER_FIELDS_CLEARED, process_start_time
from oxi_core.engine.retry import retry_due
from oxi_core.engine.routes import agent_model, provider_failure, route_worker
from oxi_core.engine.transcripts import TranscriptWriter, prune_transcripts, transcript_path
from oxi_core.errors import (
    AgentSetupError,
    ForgeSetupError,
    ForgeUnavailable,
    GitError,
    GitTooOld,
    SetupError,
)
from oxi_core.git_index import FreshIndex, read_index
from oxi_core.ledger import events as ev
from oxi_core.models import (
    Classification,
    Event,
    PullRequest,
    PullRequestSubject,
    Verdict,
    VerdictKind,
    isoformat,
)
from oxi_core.repolock import repo_lock
from oxi_core.roadmap import RoadmapItem
from oxi_core.tasks import Task, TaskStatus

if TYPE_CHECKING:
    from pathlib import Path

    from oxi_core.engine.engine import Engine
    from oxi_core.engine.prepared import Prepared

HEARTBEAT_MIN_INTERVAL_S = 1.0
CANCEL_POLL_S = 1.0
# The worker renews its lease (the heartbeat) this often while no agent runs: an eighth of
# heartbeat_timeout_s, between these bounds.
LEASE_BEATS_PER_TIMEOUT = 8
LEASE_INTERVAL_BOUNDS_S = (0.25, 30.0)


def lease_interval_s(heartbeat_timeout_s: float) -> float:
    low, high = LEASE_INTERVAL_BOUNDS_S
    return min(high, max(low, heartbeat_timeout_s / LEASE_BEATS_PER_TIMEOUT))


NO_CHANGES = "no changes: the agent reported success but left no commit and no diff"


async def run_worker(engine: Engine, task_id: str, item: RoadmapItem,
                     cancel: asyncio.Event) -> None:
    """Run one claimed task; an unexpected error requeues it as transient, never strands it."""
    from oxi_core.log import bind_contextvars

    # This asyncio task's context: every log line of this worker names its task.
    bind_contextvars(task_id=task_id)
    worker = Worker(engine, task_id, item, cancel)
    try:
        await worker.run()
    except SetupError as error:
        # Every task would fail the same way: requeue this one, its attempt not counted (the
        # round starts one later), and pause the engine.
        message = f"{type(error).__name__}: {error}"
        engine.log.error("setup_error", task_id=task_id, error=message)
        task = engine.ledger.task(task_id)
        round_start = task.round_start + 1 if task is not None else 0
        engine.ledger.transition(task_id, TaskStatus.PLANNED, event_type=ev.DISPATCH_ERROR,
                                 payload={"error": message, "paused": True},
                                 expect=[TaskStatus.DISPATCHED], last_error=message,
                                 round_start=round_start, **WORKER_FIELDS_CLEARED)
        what = ("the forge refuses oxi's credentials" if isinstance(error, ForgeSetupError)
                else "the local forge cannot merge" if isinstance(error, GitTooOld)
                else "the worker agent cannot run")
        engine.pause(f"{what}: {message}")
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        engine.log.error("dispatch_error", task_id=task_id, error=message)
        engine.record(ev.DISPATCH_ERROR, task_id=task_id, payload={"error": message})
        task = engine.ledger.task(task_id)
        if task is not None and task.status is TaskStatus.DISPATCHED:
            worker.schedule_retry(task, message, None)


class Worker:
    def __init__(self, engine: Engine, task_id: str, item: RoadmapItem,
                 cancel: asyncio.Event) -> None:
        self.engine = engine
        self.ledger = engine.ledger
        self.config = engine.config
        self.policy = engine.config.policy
        self.paths = engine.config.paths
        self.task_id = task_id
        self.item = item
        self.cancel = cancel
        self.remote = self.policy.remote
        self.base_ref = f"{self.policy.remote}/{self.policy.base_branch}"
        self._last_beat = 0.0
        self._turns = 0
        self._fresh = False
        self._base_commit: str | None = None
        self._fresh_index: FreshIndex | None = None  # the new worktree's, for delivery
        self._excludes: Path | None = None  # core.excludesFile for delivery and removal
        # What the worker is doing, for its lease beats while no agent speaks for it.
        from oxi_core.engine.engine import WorkerProgress

        self.progress = engine.progress.setdefault(task_id, WorkerProgress(task_id))
        self._phase = "worktree"
        self._agent_running = False
        self._usage: dict[str, Usage] = {}  # message id -> usage so far, for the live cost
        self._normalize: Callable[[Mapping[str, Any]], Usage] | None = None
        self._model: str | None = None
        self._transcript: TranscriptWriter | None = None

    @property
    def _phase(self) -> str:
        return self.progress.phase

    @_phase.setter
    def _phase(self, phase: str) -> None:
        self.progress.phase = phase

    def task(self) -> Task:
        task = self.ledger.task(self.task_id)
        assert task is not None
        return task

    async def run(self) -> None:
        """The task from worktree to delivery, renewing its lease all the while."""
        lease = asyncio.create_task(self._keep_lease())
        try:
            await self._run()
        finally:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease

    async def _keep_lease(self) -> None:
        """Beat while no agent does (creating the worktree, hooks, pushing): another host
        judges this claim by its heartbeat alone."""
        interval = lease_interval_s(self.policy.heartbeat_timeout_s)
        while True:
            await asyncio.sleep(interval)
            if not self._agent_running:
                self.ledger.update_task(self.task_id, event_type=None,
                                        last_progress_at=self.ledger.now_iso(),
                                        last_event=self._phase)

    async def _run(self) -> None:
        task = self.task()
        # Every process this claim's runs start (hooks, the agent, checks) carries its scope,
        # so none outlives the task, even after this supervisor is killed (the reaper).
        enter_claim_scope(claim_scope(task.id, task.attempts, self.engine.supervisor_pid,
                                      self.engine.supervisor_started_at))
        branch = worktrees.branch_name(task.id, task.title)
        fresh = bool(task.last_error and task.last_error.startswith("conflict"))
        # A worktree made ahead for this task (`oxi saturate`, T2-47), if any.
        prepared = await self.engine.prepared.take(task.id)
        tree = self._prepared_worktree(branch, fresh, task.branch is None, prepared)
        if tree is None:  # (a fetch, git: off the event loop)
            tree = await asyncio.to_thread(self._prepare_worktree, task.id, branch, fresh,
                                           task.branch is None, prepared)
        self._fresh = fresh
        self._fresh_index = tree.fresh_index
        self.ledger.update_task(
            task.id, event_type=ev.WORKTREE_REUSED if tree.reused else ev.WORKTREE_CREATED,
            payload={"path": str(tree.path), "branch": branch, "fresh": fresh,
                     **({"prepared": True} if tree.prepared else {})},
            branch=branch, worktree=str(tree.path),
        )
        if not tree.reused:
            created = await self._hook("after_create", tree.path)
            if not created.ok:
                await self._hook_failed_requeue(task, tree.path, branch, created)
                return
        if await self._resume_delivery(task, tree.path, branch, fresh):
            return
        before = await self._hook("before_run", tree.path)
        if not before.ok:
            await self._hook_failed_requeue(task, tree.path, branch, before)
            return

        self._phase = "agent"
        try:
            result = await self._invoke(task, tree.path)
        finally:
            self._agent_running = False
            self._phase = "delivering"

        after = await self._hook("after_run", tree.path)
        if not after.ok:
            self.engine.record(ev.WORKTREE_HOOK_FAILED, task_id=task.id, payload=after.payload())
        self.record_result(task, result)
        # (Not for refused credentials: the engine pauses on them, and no slot is refilled.)
        if self.engine.on_agent_done is not None \
                and result.classification is not Classification.SETUP_ERROR:
            self.engine.on_agent_done()  # (`oxi saturate` claims the slot's next task now)
            # The refill starts its agent first; this worker's delivery follows.
            await self.engine.wait_for_starts()
        # Once the slot is free: pruning old transcripts is no part of the agent's run.
        await asyncio.to_thread(prune_transcripts, self.paths, self.policy.transcripts_keep)
        if self.cancelled():
            await self._finish_cancelled(tree.path, branch)
            return
        if result.classification is Classification.SETUP_ERROR:
            # Refused credentials: run_worker requeues the task (the worktree stays for the
            # next attempt) and pauses the engine.
            raise AgentSetupError(result.reason)
        if result.classification is Classification.RETRYABLE_TRANSIENT:
            # The worktree stays for the retry to reuse, unless retries are exhausted.
            self.schedule_retry(self.task(), result.reason, result.retry_after_s)
            if self.task().status is TaskStatus.FAILED:
                await self._cleanup(tree.path, branch)
            return
        if result.classification is Classification.FAILED:
            self.fail(result.reason)
            await self._cleanup(tree.path, branch)
            return
        await self._deliver(tree.path, branch)

    async def _hook(self, name: str, path: Any) -> HookOutcome:
        """Run an operator's worktree hook off the event loop (no thread when none is set)."""
        hook = self.config.worktree.hooks.get(name)
        if hook is None:
            return HookOutcome(name, True, 0, "")
        previous, self._phase = self._phase, f"hook:{name}"
        try:
            return await asyncio.to_thread(run_hook, name, hook, path, self.policy)
        finally:
            self._phase = previous

    def _locked(self, *, shared: bool = False) -> Any:
        return repo_lock(self.paths.state_dir).hold(shared=shared)

    def _prepared_worktree(self, branch: str, fresh: bool, first: bool,
                           prepared: Prepared | None) -> worktrees.Worktree | None:
        """The worktree made ahead for this claim when it can be used as it is, decided
        without waiting: the remote as fetched within FETCH_MAX_AGE_S, and still on the base
        as fetched then. None: `_prepare_worktree` decides (fetching, moving it, or not)."""
        if prepared is None or fresh or not first:
            return None
        remote = self.engine.recent_remote()
        if remote is None or branch in remote.heads \
                or remote.base_commit != prepared.base_commit:
            return None
        tree = self.engine.prepared.use(prepared, branch, remote.base_commit)
        if tree is not None:
            self._base_commit = remote.base_commit
        return tree

    def _prepare_worktree(self, task_id: str, branch: str, fresh: bool, first: bool,
                          prepared: Prepared | None = None) -> worktrees.Worktree:
        # A branch the remote has (as last fetched) is never created anew: the careful path
        # continues it. The base commit as fetched lets "the agent changed nothing" be seen
        # without a diff.
        remote = self.engine.fetch_origin()
        self._base_commit = remote.base_commit
        first = first and branch not in remote.heads
        if prepared is not None:
            tree = self.engine.prepared.use(prepared, branch, remote.base_commit) \
                if first and not fresh else None
            if tree is not None:
                return tree
            self.engine.prepared.discard(task_id, prepared, ours=True)  # then as usual
        if first and not fresh:
            with self._locked(shared=True):  # beside other workers' pushes and adds
                tree = worktrees.add_new_worktree(self.paths, task_id, branch,
                                                  base_ref=self.base_ref)
            if tree is not None:
                return tree
        with self._locked():
            return worktrees.ensure_worktree(self.paths, task_id, branch, base_ref=self.base_ref,
                                             remote=self.remote, fresh=fresh, first=first)

    def _push(self, path: Any, branch: str) -> None:
        # Only a branch started over (after a conflict) replaces what the remote has; any
        # other push must be a fast-forward, so a remote branch oxi did not know of (a ledger
        # lost, another clone) is refused, never overwritten.
        force = ["--force-with-lease"] if self._fresh else []
        env = forge_extras.git_env(self.config.forge)  # credentials for this push only
        try:
            # Shared: a push writes the remote's branch and its own remote-tracking ref, which
            # no other worker's push or worktree touches; only a fetch must wait for it.
            with self._locked(shared=True):
                git.git(["push", "--quiet", *force, self.remote, f"HEAD:refs/heads/{branch}"],
                        path, env=env)
        except GitError as error:
            if _refused_credentials(error.stderr):
                raise ForgeSetupError(
                    f"the push to {self.remote} was refused: {error.stderr.strip()[-300:]}",
                    hint="check the forge's token (oxi config check names where it comes "
                         "from) and that it may write to the repository") from error
            raise

    def _remove(self, path: Any, branch: str, force: bool, delivered: bool,
                seen_clean: bool) -> str | None:
        if delivered:
            # Shared: `worktree remove` of a clean tree touches only its own folders. Anything
            # else (the tree held changes, or was gone) is decided under the exclusive lock.
            with self._locked(shared=True):
                if worktrees.remove_clean_worktree(self.paths, path, seen_clean=seen_clean,
                                                   excludes_file=self._excludes):
                    return None
        with self._locked():
            return worktrees.remove_worktree(self.paths, path, branch=branch, remote=self.remote,
                                             force=force)

    # -- the agent ------------------------------------------------------------------------

    async def _invoke(self, task: Task, tree_path: Any) -> DispatchResult:
        prompt = build_prompt(
            task_id=task.id, title=self.item.title, subtitle=self.item.subtitle,
            body=self.item.body, conventions=repository_conventions(self.paths.repo_root),
            critic_reasons=task.critic_reasons, attempt=task.attempts,
        )
        request = DispatchRequest(
            task_id=task.id, prompt=prompt, worktree=tree_path,
            max_cost_usd=self.policy.task_cap_for(task.model),
            timeout_s=self.policy.agent_timeout_s, stall_timeout_s=self.policy.stall_timeout_s,
            startup_timeout_s=self.policy.startup_timeout_s,
            on_event=self._on_event, on_spawn=self._on_spawn, cancel=self.cancel,
        )
        watcher = asyncio.create_task(self._watch_for_cancel())
        self._transcript = TranscriptWriter(transcript_path(self.paths, task.id, task.attempts))
        try:
            return await self._invoke_routed(task, request)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self._transcript.close()

    async def _invoke_routed(self, task: Task, request: DispatchRequest) -> DispatchResult:
        """Run the routed agent; on a provider failure (5xx, overload, credentials), the next
        agent of the route's fallback chain, recorded as a ``route_fallback`` event."""
        from oxi_core.agentic.shadow import invoke_with_shadow

        route = self.engine.routes.get(task.id) or route_worker(self.config, task)
        chain = route.chain
        for position, ref in enumerate(chain):
            agent = self.config.instances["agents"][ref.adapter_name]
            routed = attrs.evolve(request, model=ref.model_id)
            self.progress.agent = ref.adapter_name
            self._normalize = getattr(agent, "usage_normalizer", None)
            self._model = agent_model(self.config, ref.adapter_name, ref.model_id)
            result = await invoke_with_shadow(self.engine, routed, worker=agent,
                                              worker_name=ref.adapter_name)
            why = provider_failure(result)
            if why is None or position == len(chain) - 1 or self.cancelled():
                return result
            following = chain[position + 1]
            model = agent_model(self.config, following.adapter_name, following.model_id)
            self.ledger.update_task(
                task.id, event_type=ev.ROUTE_FALLBACK, cost_usd=result.cost_usd,
                payload={"role": "worker", "from": ref.label(),
                         "to": following.adapter_name, "model": model, "reason": why,
                         "error": result.reason, "rule": route.rule,
                         "result": result.result_event()},
                agent=following.adapter_name, model=model,
            )
        raise AssertionError("the chain is never empty")

    def _on_spawn(self, pid: int, pgid: int) -> None:
        self._agent_running = True  # from now on its events are the heartbeat
        self.engine.agent_started(self.task_id)
        self.engine.prepared.schedule_refresh()  # the next task's worktree, now it started
        self.ledger.update_task(
            self.task_id, event_type=ev.WORKER_STARTED,
            payload={"pid": pid, "pgid": pgid, "host": self.engine.host},
            worker_pid=pid, worker_pgid=pgid, worker_started_at=process_start_time(pid),
            worker_host=self.engine.host,
        )

    def _on_event(self, event: CanonicalEvent) -> None:
        if self._transcript is not None:
            self._transcript.write(event)
        self._show_progress(event)
        # The heartbeat: the agent is making progress. Throttled so chatty agents cost little.
        self._turns += event.kind == "assistant"
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_MIN_INTERVAL_S:
            return
        self._last_beat = now
        self.ledger.update_task(
            self.task_id, event_type=None, last_progress_at=self.ledger.now_iso(),
            last_event=str(event.kind), turns=self._turns, session_id=event.session_id,
        )

    def _show_progress(self, event: CanonicalEvent) -> None:
        """The live view's row: the last event, and the cost the stream has shown so far
        (usage per message, priced by the rate card), or the run's own figure once it says."""
        progress = self.progress
        progress.last_event, progress.last_event_at = str(event.kind), time.monotonic()
        progress.turns += event.kind == "assistant"
        data = event.data
        if event.kind == "result" and isinstance(data.get("cost_usd"), int | float):
            progress.cost_usd, progress.cost_final = float(data["cost_usd"]), True
            return
        raw = data.get("usage")
        if progress.cost_final or not isinstance(raw, Mapping) or self._normalize is None:
            return
        try:
            self._usage[str(data.get("message_id") or len(self._usage))] = self._normalize(raw)
        except (TypeError, ValueError):
            return
        total = sum(self._usage.values(), Usage())
        progress.tokens = total.total
        priced = cost_usd(self._model, total)
        if priced is not None:
            progress.cost_usd = priced

    async def _watch_for_cancel(self) -> None:
        while not self.cancel.is_set():
            await asyncio.sleep(CANCEL_POLL_S)
            if self.cancelled():
                self.cancel.set()

    def cancelled(self) -> bool:
        task = self.ledger.task(self.task_id)
        return task is None or task.status is not TaskStatus.DISPATCHED or not task.in_roadmap

    # -- recording ------------------------------------------------------------------------

    def record_result(self, task: Task, result: DispatchResult) -> None:
        """Record the run's result once: recording the same attempt again changes nothing."""
        attempt = task.attempts
        seen = self.ledger.query(
            "SELECT 1 FROM events WHERE type = ? AND task_id = ? "
            "AND json_extract(payload, '$.attempt') = ? LIMIT 1",
            (ev.DISPATCH_RESULT, task.id, attempt),
        )
        if seen:
            return
        payload = {**result.result_event(), "attempt": attempt}
        if self._transcript is not None:
            payload["transcript"] = str(self._transcript.path)
        with self.ledger.transaction():
            self.ledger.update_task(
                task.id, event_type=ev.DISPATCH_RESULT, payload=payload,
                cost_usd=result.cost_usd, session_id=result.session_id, turns=result.turns,
                tokens=result.usage.total, last_progress_at=self.ledger.now_iso(),
                worker_pid=None, worker_pgid=None, worker_started_at=None,
            )
            if result.budget_undercount:
                # The figure above may be low: say so, so budgets are read with care.
                self.engine.record(ev.BUDGET_UNDERCOUNT, task_id=task.id,
                                   session_id=result.session_id, payload={
                                       "reason": result.budget_undercount,
                                       "cost_usd": result.cost_usd, "agent": result.agent,
                                       "attempt": attempt})
        if result.session_id:
            from oxi_core.log import bind_contextvars

            bind_contextvars(session_id=result.session_id)
        self.engine.log.info("dispatch_result", attempt=attempt,
                             classification=str(result.classification),
                             reason=result.reason, cost_usd=result.cost_usd)
        if result.budget_undercount:
            self.engine.notify_last(ev.BUDGET_UNDERCOUNT, task.id)
        cap = self.policy.task_cap_for(task.model)  # what the request carried
        if result.cost_usd > cap + 1e-9:
            self.engine.record(ev.TASK_CAP_EXCEEDED, task_id=task.id, notify=True, payload={
                "cost_usd": result.cost_usd, "cap_usd": cap, "agent": result.agent,
                "cost_source": str(result.cost_source), "attempt": attempt})
        if result.cost_usd:
            self.engine.check_daily_overrun()

    def schedule_retry(self, task: Task, reason: str, retry_after_s: float | None) -> None:
        if task.round_attempts >= self.policy.max_attempts:
            self.fail(f"{reason} (after {task.round_attempts} attempts)")
            return
        due = retry_due(self.engine.clock(), task.round_attempts, self.policy, retry_after_s)
        self.ledger.transition(
            task.id, TaskStatus.RETRYING, event_type=ev.RETRY_SCHEDULED,
            payload={"reason": reason, "attempt": task.attempts, "due": isoformat(due)},
            expect=[TaskStatus.DISPATCHED], retry_due_at=isoformat(due), last_error=reason,
        )

    def fail(self, reason: str) -> None:
        moved = self.ledger.transition(
            self.task_id, TaskStatus.FAILED, event_type=ev.TASK_FAILED,
            payload={"reason": reason}, expect=[TaskStatus.DISPATCHED, TaskStatus.IN_REVIEW],
            last_error=reason,
        )
        if moved is not None:
            self.engine.notify_last(ev.TASK_FAILED, self.task_id)

    async def _hook_failed_requeue(self, task: Task, path: Any, branch: str,
                                   outcome: HookOutcome) -> None:
        self.engine.record(ev.WORKTREE_HOOK_FAILED, task_id=task.id, payload=outcome.payload())
        await self._cleanup(path, branch, force=(outcome.name == "after_create"))
        self.ledger.transition(
            task.id, TaskStatus.PLANNED, event_type=ev.TASK_DEFERRED,
            payload={"reason": outcome.failure()}, expect=[TaskStatus.DISPATCHED],
            last_error=f"{outcome.failure()}: {outcome.output_tail[-300:]}",
            **WORKER_FIELDS_CLEARED,
        )

    # -- delivering the work --------------------------------------------------------------

    async def _deliver(self, path: Any, branch: str) -> None:
        task = self.task()
        fresh = self._fresh_index
        if fresh is not None and fresh.commit == self._base_commit \
                and await self._deliver_from_index(task, path, branch, fresh):
            return
        status = await asyncio.to_thread(git.tree_status, path)
        head = status.head
        untracked, droppings = split_droppings(status.untracked)
        dirty = bool(status.changed or untracked)  # build droppings are not work
        if not dirty and head is not None and head == self._base_commit:
            # A clean tree whose HEAD is a commit the base branch had: nothing on top of it.
            # (When the base moved since the fetch, HEAD differs and the diff decides.)
            self.fail(NO_CHANGES)
            await self._cleanup(path, branch, delivered=True, seen_clean=True)
            return
        committed = None
        if dirty:
            committed = await asyncio.to_thread(
                git.commit_all, path, f"{task.id}: {task.title}",
                identity=git.identity_env(self.paths.repo_root, state_dir=self.paths.state_dir),
                exclude=droppings)
        if committed is not None and head is not None and head == self._base_commit:
            # The agent committed nothing itself: oxi's commit on the base is the whole change,
            # the files `git status` listed (no diff needed).
            changed = sorted({name.rstrip("/") for name in (*status.changed, *untracked)})
        else:
            # No diff against the base means no work, whatever the commits say.
            changed = await asyncio.to_thread(git.changed_files, self.base_ref, "HEAD", path)
        if not changed:
            self.fail(NO_CHANGES)
            await self._cleanup(path, branch)
            return
        pushed = committed or head
        if pushed is None:
            pushed = await asyncio.to_thread(git.out, ["rev-parse", "HEAD"], path)
        await self._push_and_open(task, path, branch, changed, pushed)

    async def _deliver_from_index(self, task: Task, path: Any, branch: str,
                                  fresh: FreshIndex) -> bool:
        """Deliver without a `git status` (T2-49) when the agent made no commit of its own:
        the work is what `git add -A` (droppings excluded) stages over the index git wrote
        for the worktree on the base, and its files are the entries that differ, read from
        the index file. False when the files cannot settle it (only staging is done): the
        caller then looks with `git status`."""
        if git.stored_head(path, self.paths.repo_root) != fresh.commit:
            return False  # the agent committed, or HEAD cannot be read: a diff decides
        changed = await asyncio.to_thread(self._stage_work, path, fresh)
        if changed is None:
            return False
        if not changed:  # nothing but droppings and ignored files in the tree
            self.fail(NO_CHANGES)
            # (git's own check decides: a submodule may hold work `git add` cannot stage.)
            await self._cleanup(path, branch, delivered=True)
            return True
        committed = await asyncio.to_thread(
            git.commit_staged, path, f"{task.id}: {task.title}",
            identity=git.identity_env(self.paths.repo_root, state_dir=self.paths.state_dir))
        if committed is None:
            return False  # (the index differs from HEAD: git would have committed)
        await self._push_and_open(task, path, branch, changed, committed)
        return True

    def _stage_work(self, path: Any, fresh: FreshIndex) -> list[str] | None:
        """Stage the work in ``path`` and name its files; None when the files cannot settle
        it. A worker thread's call."""
        from oxi_core.git_config import read_config

        root, state_dir = self.paths.repo_root, self.paths.state_dir
        # (Read as it is now, not as this process first saw it: `oxi saturate` runs for days.)
        configured = read_config(root, state_dir).get("core.excludesfile")
        excludes = excludes_file(state_dir, configured)
        before = fresh.entries()
        if excludes is None or before is None:
            return None
        self._excludes = excludes
        git.stage_all(path, excludes_file=excludes)
        staged = read_index(path, hash_bytes=len(fresh.commit) // 2)
        if staged is None:
            return None
        changed = staged.changed_since(before)
        # A repository's own ignore rules outrank the excludes file: one that re-includes
        # (`!node_modules/`) lets droppings in. They are never work: out again, by name.
        droppings = [name for name in changed if name not in before and dropping_root(name)]
        if droppings:
            git.git(["reset", "--quiet", "--", *(f":(literal){name}" for name in droppings)],
                    path)
            staged = read_index(path, hash_bytes=len(fresh.commit) // 2)
            return None if staged is None else staged.changed_since(before)
        return changed

    async def _push_and_open(self, task: Task, path: Any, branch: str, changed: list[str],
                             pushed: str) -> None:
        """Push the delivered ``pushed`` head, record it with its ``changed`` files, and open
        its pull request."""
        files = tuple(sorted(set(task.files_touched) | set(changed)))
        await asyncio.to_thread(self._push, path, branch)
        # The head oxi delivered: a pull request whose head moves after this was pushed to by
        # someone else, and what the critic approved is not what would merge. Should opening
        # the pull request fail, the next attempt resumes from here (_resume_delivery).
        self.ledger.update_task(task.id, event_type=ev.BRANCH_PUSHED,
                                payload={"branch": branch, "files": list(changed),
                                         "head": pushed, "attempt": task.attempts},
                                files_touched=files)
        await self._open_pr_and_review(task, path, branch)

    def _undelivered_push(self, task: Task) -> Event | None:
        """The branch an earlier attempt pushed whose pull request was never opened (opening it
        failed, or the supervisor died in between), if nothing has happened to the task since
        that calls for new work: no result recorded after it, no pull request, no change to
        its roadmap item."""
        if task.pr_number is not None:
            return None
        found = self.ledger.events(types=[ev.BRANCH_PUSHED], task_id=task.id,
                                   newest_first=True, limit=1)
        if not found:
            return None
        since = self.ledger.events(
            types=[ev.DISPATCH_RESULT, ev.PR_OPENED, ev.TASK_REOPENED, ev.TASK_UPDATED,
                   ev.PR_CONFLICTED], task_id=task.id, after_id=found[0].id, limit=1)
        return None if since else found[0]

    async def _resume_delivery(self, task: Task, path: Any, branch: str, fresh: bool) -> bool:
        """Deliver the work an earlier attempt pushed, without running the agent again (it
        was paid for): push again (a no-op when the remote has it; the branch back when it was
        deleted), open the pull request, review. False when there is nothing to resume, or the
        worktree's head is not the pushed one (then the attempt runs as usual)."""
        pushed = None if fresh else self._undelivered_push(task)
        if pushed is None:
            return False
        head = await asyncio.to_thread(git.out, ["rev-parse", "HEAD"], path)
        if head != pushed.payload.get("head"):
            return False
        self._phase = "delivering"
        self.engine.agent_started(task.id)  # (none will: nothing for a refill to wait for)
        self.engine.record(ev.DELIVERY_RESUMED, task_id=task.id, payload={
            "branch": branch, "head": head, "attempt": task.attempts,
            "pushed_by_attempt": pushed.payload.get("attempt")})
        await asyncio.to_thread(self._push, path, branch)
        await self._open_pr_and_review(self.task(), path, branch)
        return True

    async def _open_pr_and_review(self, task: Task, path: Any, branch: str) -> None:
        forge = self.config.forge
        pr = await asyncio.to_thread(
            forge.open_pr, task_id=task.id, branch=branch, title=f"{task.id}: {task.title}",
            body=self._pr_body(task),
        )
        self.ledger.transition(
            task.id, TaskStatus.IN_REVIEW, event_type=ev.PR_OPENED,
            payload={"pr": pr.number, "url": pr.url, "files": list(pr.files),
                     "head": pr.head_sha},
            expect=[TaskStatus.DISPATCHED], pr_number=pr.number, **WORKER_FIELDS_CLEARED,
        )
        approved = await self._review(task, pr, path)
        # The branch is on the remote now: the worktree can go before anything merges it.
        await self._cleanup(path, branch, delivered=True)
        if approved:
            await self._arm_auto_merge(pr)

    def _pr_body(self, task: Task) -> str:
        lines = [f"Roadmap item **{task.id} · {task.title}**", ""]
        if self.item.subtitle:
            lines += [f"_{self.item.subtitle}_", ""]
        lines.append(f"Opened by oxi (attempt {task.attempts}).")
        return "\n".join(lines)

    async def _review(self, task: Task, pr: PullRequest, path: Any) -> bool:
        """Run the critic; True when it approved (the caller then arms auto-merge)."""
        critic = self.config.critic
        if critic is None:
            return False  # no critic configured: the pull request waits for a person
        self._phase = f"review ({self.config.roles.critic})"
        subject = PullRequestSubject(pr=pr, tree=path, task_id=task.id, title=task.title,
                                     subtitle=self.item.subtitle)
        verdict = await asyncio.to_thread(critic.judge, subject)
        # Through the task (not a bare event), so the review's cost counts in the task's.
        self.ledger.update_task(
            task.id, event_type=ev.CRITIC_VERDICT, cost_usd=verdict.cost_usd,
            payload={"pr": pr.number, "verdict": str(verdict.kind),
                     "reasons": list(verdict.reasons), "critic": self.config.roles.critic,
                     "head": pr.head_sha},
        )
        if verdict.kind is VerdictKind.ABSTAIN:
            # The critic could not judge (its model unreachable or unreadable): no approval,
            # and no reason to redo the work either. The pull request waits for a person.
            self.engine.record(ev.CRITIC_UNAVAILABLE, task_id=task.id, notify=True, payload={
                "pr": pr.number, "reasons": list(verdict.reasons)})
            return False
        await self._post_review(pr, verdict)
        if not verdict.approved:
            reasons = "\n\n".join(verdict.reasons)
            if task.round_attempts >= self.policy.max_attempts:
                self.fail(f"the critic rejected attempt {task.attempts}, the last allowed")
                return False
            self.ledger.transition(
                task.id, TaskStatus.PLANNED, event_type=ev.TASK_REOPENED,
                payload={"reason": "the critic rejected the pull request", "pr": pr.number},
                expect=[TaskStatus.IN_REVIEW], critic_reasons=reasons,
                last_error="rejected by the critic",
            )
            return False
        self.ledger.update_task(task.id, event_type=None, critic_reasons=None)
        return True

    async def _post_review(self, pr: PullRequest, verdict: Verdict) -> None:
        """The critic's findings on the pull request itself, where people look. Losing them
        there loses nothing (the ledger has them), so a failure is only recorded."""
        names = self.config.roles.critic
        critic = "+".join(names) if isinstance(names, tuple) else (names or "critic")
        body = review_body(critic, verdict)
        try:
            await asyncio.to_thread(forge_extras.post_review, self.config.forge, pr.number, body)
        except Exception as error:
            self.engine.record(ev.PR_REVIEW_POSTED, task_id=self.task_id, payload={
                "pr": pr.number, "posted": False, "error": f"{type(error).__name__}: {error}"})
            return
        self.engine.record(ev.PR_REVIEW_POSTED, task_id=self.task_id,
                           payload={"pr": pr.number, "posted": True, "verdict": str(verdict.kind)})

    async def _arm_auto_merge(self, pr: PullRequest) -> None:
        """T2-44: the code path that records an approval is the one that arms auto-merge."""
        if not self.policy.auto_merge:
            return
        self._phase = "merging"
        try:
            await asyncio.to_thread(self.engine.arm_auto_merge, self.task(), pr)
        except ForgeUnavailable as error:
            # The approval is recorded; the next tick's observe arms it (T2-44).
            self.engine.record(ev.AUTO_MERGE_RETRIED, task_id=self.task_id,
                               payload={"pr": pr.number, "error": str(error)})

    # -- endings --------------------------------------------------------------------------

    async def _cleanup(self, path: Any, branch: str, *, force: bool = False,
                       delivered: bool = False, seen_clean: bool = False) -> None:
        """Remove the worktree, keeping it if that would lose work. ``delivered``: its HEAD is
        on the remote (or is the base commit), so only uncommitted changes could be lost;
        ``seen_clean``: and a `git status` after the agent ended found none."""
        await self._hook("before_remove", path)
        kept = await asyncio.to_thread(self._remove, path, branch, force, delivered, seen_clean)
        if kept:
            self.engine.record(ev.WORKTREE_KEPT, task_id=self.task_id,
                               payload={"path": str(path), "reason": kept})
        else:
            self.engine.record(ev.WORKTREE_REMOVED, task_id=self.task_id,
                               payload={"path": str(path)})

    async def _finish_cancelled(self, path: Any, branch: str) -> None:
        task = self.task()
        if task.status is TaskStatus.DISPATCHED:
            self.ledger.transition(task.id, TaskStatus.ABANDONED, event_type=ev.TASK_CANCELLED,
                                   payload={"reason": "cancelled while running"},
                                   **WORKER_FIELDS_CLEARED)
        reason = await asyncio.to_thread(
            worktrees.unpushed_work, path, branch=branch, remote=self.remote,
        )
        if task.pr_number is not None:
            self.engine.close_pr(task, "Closed by oxi: the task was cancelled.")
        self.engine.record(ev.TASK_CANCELLED, task_id=task.id, notify=True, payload={
            "worktree_kept": str(path) if reason else None, "unpushed": reason})
        if not reason:
            await self._cleanup(path, branch)


# git's words when the remote refused the credentials (or asked for some it did not get).
_CREDENTIAL_REFUSALS = ("Authentication failed", "could not read Username",
                        "could not read Password", "The requested URL returned error: 403")


def _refused_credentials(stderr: str) -> bool:
    return any(text in stderr for text in _CREDENTIAL_REFUSALS)


def review_body(critic: str, verdict: Verdict) -> str:
    """The critic's verdict as a pull request review: its findings fenced as text (they quote
    test output and agent text, which is data), secrets redacted."""
    from oxi_core.log import redact_text

    lines = [f"**oxi critic `{critic}`: {verdict.kind}**"]
    for reason in verdict.reasons:
        text = redact_text(reason).rstrip()
        # A fence longer than any run of backticks in the text, so the text cannot close it.
        longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
        fence = "`" * max(3, longest + 1)
        lines += ["", f"{fence}text", text, fence]
    if not verdict.reasons:
        lines += ["", "No findings."]
    return "\n".join(lines)
