"""The engine: one tick is ingest -> reap -> observe -> dispatch.

The engine is the only writer of the ledger. Workers run as asyncio tasks in this process and
report through it; a failing phase is an event and a retry next tick, never the engine's death.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core import forge_extras, git
from oxi_core.config import OxiConfig
from oxi_core.engine.ingest_mark import IngestMark, stored_mark
from oxi_core.errors import (
    AutoMergeUnavailable,
    ForgeUnavailable,
    GitError,
    OxiError,
    RoadmapError,
    SetupError,
)
from oxi_core.event import isoformat, parse_ts, utcnow
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.log import get_logger
from oxi_core.repolock import repo_lock
from oxi_core.roadmap_text import read_roadmap_text, text_digest
from oxi_core.tasks import Task, TaskStatus

if TYPE_CHECKING:
    # What only a tick that dispatches, reaps or parses needs is imported when it does: an
    # idle `oxi tick` (Engine.run_once_blocking) needs no event loop, no routing, no process
    # table and no roadmap parser.
    import asyncio
    import concurrent.futures

    from oxi_core.engine.ingest import BaseMerges, IngestChange
    from oxi_core.engine.prepared import PreparedWorktrees
    from oxi_core.engine.reaper import Reaped
    from oxi_core.engine.routes import WorkerRoute
    from oxi_core.engine.state import EngineState
    from oxi_core.models import Event, GateDecision, PullRequest
    from oxi_core.roadmap import Roadmap

Clock = Callable[[], datetime]
PAUSED_KEY = "paused"
FETCH_MAX_AGE_S = 2.0
BUDGET_DAY_KEY = "daily_budget_reached_on"
WARNINGS_KEY = "roadmap_warnings_digest"
ESTIMATE_HISTORY = 10
# A repository that refused auto-merge is asked again this often (the operator may have turned
# the setting on), not every tick.
REARM_REFUSED_AFTER_S = 3600.0
NOTICE_EVENTS = {"rate_limited": ev.FORGE_RATE_LIMITED, "retried": ev.FORGE_RETRIED,
                 "unavailable": ev.FORGE_UNAVAILABLE}
# A slot is an agent process: a dispatched task holds one until its agent's result is recorded
# (pushing and opening its PR afterwards take none).
AGENTS_IN_FLIGHT_SQL = (
    "SELECT count(*) FROM tasks t WHERE t.status = 'dispatched' AND NOT EXISTS ("
    "SELECT 1 FROM events e WHERE e.task_id = t.id AND e.type = ? "
    "AND json_extract(e.payload, '$.attempt') = t.attempts)"
)


# Agents' spend today, and what the caps of today's runs let it pass the daily budget by. A
# claim recorded before claims carried their cap allows anything (no false pause on upgrade).
DAILY_OVERRUN_SQL = (
    "SELECT (SELECT coalesce(sum(cost_usd), 0) FROM events WHERE type = ? AND ts >= ?), "
    "(SELECT coalesce(sum(max(0, coalesce(json_extract(payload, '$.cap_usd'), 1e12) "
    "- coalesce(json_extract(payload, '$.estimate_usd'), 0))), 0) "
    "FROM events WHERE type = ? AND ts >= ?)"
)


@attrs.define
class WorkerProgress:
    """One worker of this process, as the live view shows it. ``cost_usd`` is priced from the
    usage the agent's stream has shown (the rate card), an estimate until its result is
    recorded; None when nothing could be priced yet."""

    task_id: str
    agent: str | None = None
    phase: str = "starting"
    last_event: str | None = None
    last_event_at: float = attrs.field(factory=time.monotonic)
    turns: int = 0
    tokens: int = 0
    cost_usd: float | None = None
    cost_final: bool = False


@attrs.define
class TickReport:
    """What one tick did, or (``dry_run``) would do. `oxi tick --json` prints this shape for
    both, documented in docs/json.md."""

    dry_run: bool = False
    ingested: list[IngestChange] = attrs.field(factory=list)
    reaped: list[Reaped] = attrs.field(factory=list)
    merged: list[str] = attrs.field(factory=list)
    # One entry per candidate looked at, in order: task, title, decision, reason.
    decisions: list[dict[str, str]] = attrs.field(factory=list)
    failed_phases: list[tuple[str, str]] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)
    paused: bool = False
    budget_reached: bool = False
    capacity: int | None = None
    in_flight: list[str] = attrs.field(factory=list)
    # What became of each task this tick dispatched, once its worker finished.
    outcomes: list[dict[str, Any]] = attrs.field(factory=list)
    # New items the base branch had merged already (recorded as merged, never dispatched);
    # listed by a dry run (a real tick's ingest records them as task_merged events).
    merged_on_base: list[dict[str, str]] = attrs.field(factory=list)
    # The forge's requests this tick (what the forge_requests event recorded), if it reports.
    forge_requests: dict[str, Any] = attrs.field(factory=dict)

    def decide(self, task: Task, decision: str, reason: str = "") -> None:
        self.decisions.append({"task": task.id, "title": task.title, "decision": decision,
                               "reason": reason})

    def _with(self, decision: str) -> list[dict[str, str]]:
        return [d for d in self.decisions if d["decision"] == decision]

    @property
    def dispatched(self) -> list[str]:
        return [d["task"] for d in self._with("dispatch")]

    @property
    def deferred(self) -> list[tuple[str, str]]:
        return [(d["task"], d["reason"]) for d in self._with("defer")]

    @property
    def held(self) -> list[tuple[str, str]]:
        return [(d["task"], d["reason"]) for d in self._with("hold")]

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return [(d["task"], d["reason"]) for d in self._with("skip")]

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ingested": [{"kind": c.kind, "task": c.task_id} for c in self.ingested],
            "reaped": [{"task": r.task_id, "liveness": str(r.liveness)} for r in self.reaped],
            "merged": self.merged,
            "decisions": self.decisions,
            "dispatched": self.dispatched,
            "deferred": [{"task": t, "reason": r} for t, r in self.deferred],
            "held": [{"task": t, "reason": r} for t, r in self.held],
            "skipped": [{"task": t, "reason": r} for t, r in self.skipped],
            "no_slot": [d["task"] for d in self._with("no_slot")],
            "outcomes": self.outcomes,
            "merged_on_base": self.merged_on_base,
            "failed_phases": [{"phase": p, "error": e} for p, e in self.failed_phases],
            "warnings": self.warnings,
            "paused": self.paused,
            "budget_reached": self.budget_reached,
            "capacity": self.capacity,
            "in_flight": self.in_flight,
            "forge_requests": self.forge_requests,
        }


def utc_day_start(now: datetime) -> str:
    return isoformat(now.replace(hour=0, minute=0, second=0, microsecond=0))


@attrs.frozen
class RemoteView:
    """The remote's branches as of the engine's last fetch."""

    base_commit: str | None  # the base branch's commit, None when the remote has none
    heads: Mapping[str, str]  # branch name -> commit


class Engine:
    def __init__(
        self, config: OxiConfig, *, clock: Clock | None = None, ledger: Ledger | None = None,
        capacity: Callable[[], int] | None = None,
    ) -> None:
        config.require_secrets()  # a config loaded for reading only cannot run agents
        self.config = config
        self.clock = clock or utcnow
        if ledger is None:
            ledger = Ledger(config.paths.ledger, clock=self.clock)
            config.context.use_ledger(ledger)
        self.ledger = ledger
        self.log = get_logger("oxi.engine")
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.cancels: dict[str, asyncio.Event] = {}
        # What each worker of this process is doing, for the live view (`oxi tick` on a
        # terminal): its phase, the agent's last event, the cost its stream showed so far.
        self.progress: dict[str, WorkerProgress] = {}
        self.routes: dict[str, WorkerRoute] = {}  # the route each claimed task was given
        self.supervisor_pid = os.getpid()
        self.stop_dispatching = False  # set once, by a stopping saturate (SIGTERM, budget)
        # Called when one of this process's agents has finished and its result is recorded
        # (its concurrency slot is free): `oxi saturate` refills the slot at once.
        self.on_agent_done: Callable[[], None] | None = None
        self._prepared: PreparedWorktrees | None = None
        # Claims of this engine whose agent has not started yet, and an event set whenever
        # that empties (`wait_for_starts`).
        self._starting: set[str] = set()
        self._started: asyncio.Event | None = None
        self._capacity = capacity
        self._open_prs: list[PullRequest] = []
        self._swept = False
        self.merged_log: list[str] = []  # task ids this engine saw merge, in order
        self._phase_errors: dict[str, str] = {}
        self._notifications: list[concurrent.futures.Future[None]] = []
        self._notify_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._notify_lock = threading.Lock()  # the reap phase may notify from its thread
        self._roadmap_cache: tuple[str, Roadmap] | None = None
        # What the last ingest read: (its sha256, its text); parsed only when needed.
        self._roadmap_source: tuple[str, str] | None = None
        # Where this process's last ingest pass left the tasks (IngestMark).
        self._ingested: IngestMark | None = None
        self._fetch_lock = threading.Lock()
        self._fetched_at = -1e9
        self._remote_view = RemoteView(None, {})

    @functools.cached_property
    def supervisor_started_at(self) -> float | None:
        """This process's start time, which with its pid names it as a claim's supervisor
        (read when first needed: a tick that claims nothing and reaps nothing never does)."""
        from oxi_core.engine.reaper import process_start_time

        return process_start_time(self.supervisor_pid)

    @functools.cached_property
    def host(self) -> str:
        from oxi_core.engine.reaper import this_host

        return this_host()

    # -- the phases -----------------------------------------------------------------------

    @property
    def roadmap(self) -> Roadmap | None:
        """The roadmap the last ingest read (None when it could not), parsed when first asked
        for: a tick with nothing to ingest and nothing to dispatch never parses it."""
        if self._roadmap_source is None:
            return None
        digest, text = self._roadmap_source
        if self._roadmap_cache is None or self._roadmap_cache[0] != digest:
            from oxi_core.roadmap import parse_roadmap

            self._roadmap_cache = (digest, parse_roadmap(text))
        return self._roadmap_cache[1]

    def refill(self, report: TickReport | None = None) -> TickReport:
        """Claim tasks for the slots free now, before a tick's other phases (ingest, reap,
        observe): `oxi saturate` calls it the moment an agent's slot frees, then ticks as
        usual (whose dispatch then finds the slot taken). The checks that let a tick dispatch
        apply: not stopping, not paused, the last observe not failed (blind to open PRs,
        the overlap gate cannot decide). ``report``: add to it (a tick's, still to come)."""
        report = report or TickReport()
        if self.stop_dispatching or "observe" in self._phase_errors or self.paused():
            return report
        slots = self._free_slots(report)
        if slots > 0 and self.roadmap is not None:
            self._dispatch(report, slots)
        return report

    async def tick(self, report: TickReport | None = None) -> TickReport:
        """One tick; ``report``: what a `refill` just before it did, to report with it."""
        import asyncio

        report = report or TickReport()
        self._before_reap(report)
        if self._reap_needed():
            # On a worker thread: heartbeat triage asks a model (up to its timeout) and an
            # orphan's kill has a grace period, while this loop streams the running agents.
            skip = frozenset(self.workers)
            await asyncio.to_thread(self._phase, report, "reap",
                                    lambda: self._reap_claims(report, skip))
            self._notify_reaped(report)
        if self._after_reap(report):
            slots = self._free_slots(report)
            if slots > 0:
                self._dispatch(report, slots)
        return report

    def _before_dispatch(self, report: TickReport) -> bool:
        """The phases before dispatch (sweep once, ingest, reap, observe), none of which needs
        an event loop; True when dispatch may go ahead."""
        self._before_reap(report)
        self._phase(report, "reap", lambda: self._reap(report))
        return self._after_reap(report)

    def _before_reap(self, report: TickReport) -> None:
        if not self._swept:
            self._swept = True
            self._phase(report, "sweep", self.startup)
        if not self._phase(report, "ingest", lambda: self._ingest(report)):
            self._roadmap_source = None  # unreadable, or the phase failed: nothing to dispatch

    def _after_reap(self, report: TickReport) -> bool:
        self._phase(report, "observe", lambda: self._observe(report))
        if self.stop_dispatching:
            return False
        if any(name == "observe" for name, _ in report.failed_phases):
            return False  # blind to the open PRs, the file-overlap gate cannot decide
        if self.paused():
            report.paused = True
            return False
        return self._roadmap_source is not None

    async def wait_for_workers(self) -> None:
        import asyncio

        while self.workers:
            await asyncio.gather(*list(self.workers.values()), return_exceptions=True)

    def startup(self) -> None:
        """Once per process: sweep worktrees left by a crash (keeping any unpushed work)."""
        folder = self.config.paths.worktrees_dir
        if not folder.is_symlink() and (not folder.is_dir() or next(folder.iterdir(), None)
                                        is None):
            return  # nothing left behind (the common case: no lock, no git, no query)
        from oxi_core.engine.leftovers import busy_task_ids, record_sweep
        from oxi_core.engine.worktrees import sweep_worktrees

        policy = self.config.policy
        with repo_lock(self.config.paths.state_dir).hold():
            # Read under the lock: a task claimed after this adds its worktree only once the
            # sweep is done, so the sweep never takes a worktree for a leftover.
            busy = busy_task_ids(self.ledger)
            swept = sweep_worktrees(self.config.paths, remote=policy.remote, busy=busy)
        record_sweep(self.ledger, swept, by="sweep")

    async def run_once(self) -> TickReport:
        """`oxi tick`: one tick, then wait for the workers it started."""
        import asyncio

        merged_before = len(self.merged_log)
        report = await self.tick()
        await self.wait_for_workers()
        self._after_workers(report, merged_before)
        await asyncio.to_thread(self.flush_notifications)
        return report

    def run_once_blocking(self) -> TickReport:
        """:meth:`run_once` for a caller without an event loop: one is started (and asyncio
        imported) only when a task may be dispatched, so an idle `oxi tick` needs neither."""
        merged_before = len(self.merged_log)
        report = TickReport()
        if self._before_dispatch(report):
            slots = self._free_slots(report)
            if slots > 0 and next(self.candidates(likely_needed=1), None) is not None:
                import asyncio

                async def dispatch_and_wait() -> None:
                    self._dispatch(report, slots)
                    await self.wait_for_workers()

                asyncio.run(dispatch_and_wait())
        self._after_workers(report, merged_before)
        self.flush_notifications()
        return report

    def _after_workers(self, report: TickReport, merged_before: int) -> None:
        self.observe_now(report)
        self._phase(report, "ingest", lambda: self.settle_ingest_mark(report))
        # Merges settled by the workers themselves (auto-merge right after approval) too.
        report.merged = list(dict.fromkeys([*report.merged, *self.merged_log[merged_before:]]))
        report.outcomes = self.outcomes(report.dispatched)
        self.record_forge_report(report)

    def outcomes(self, task_ids: list[str]) -> list[dict[str, Any]]:
        """Where each of these tasks stands now, and why: what a tick's summary reports for the
        tasks it dispatched (one that failed at once must not read as "dispatched")."""
        found = []
        for task_id in task_ids:
            task = self.ledger.task(task_id)
            if task is None:
                continue
            reason = task.held_reason if task.status is TaskStatus.HELD else task.last_error
            if task.status in (TaskStatus.MERGED, TaskStatus.IN_REVIEW):
                reason = None  # an earlier attempt's error is history by now
            found.append({"task": task.id, "status": str(task.status), "reason": reason or "",
                          "attempt": task.attempts, "pr": task.pr_number})
        return found

    def observe_now(self, report: TickReport | None = None) -> TickReport:
        """Record what the workers' pull requests became (merged, conflicted) right away."""
        report = report or TickReport()
        self._phase(report, "observe", lambda: self._observe(report))
        return report

    def _phase(self, report: TickReport, name: str, body: Callable[[], Any]) -> Any:
        """Run one phase; a failure is an event (once per distinct error, not every tick)
        and a retry next tick, never the engine's death."""
        try:
            result = body()
        except SetupError as error:
            # Every tick would fail the same way: pause (nothing is failed) and say what to fix.
            message = f"{type(error).__name__}: {error}"
            report.failed_phases.append((name, message))
            self.log.error("setup_error", phase=name, error=message)
            self.pause(f"{name}: {error}")
            return None
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            report.failed_phases.append((name, message))
            self.log.error("phase_failed", phase=name, error=message)
            if self._phase_errors.get(name) != message:
                self._phase_errors[name] = message
                self.record(ev.PHASE_FAILED, payload={"phase": name, "error": message},
                            notify=True)
            return None
        if self._phase_errors.pop(name, None) is not None:
            self.log.info("phase_recovered", phase=name)
        return result

    def _ingest(self, report: TickReport) -> bool:
        """Ingest the roadmap; False when it cannot be read."""
        try:
            text = read_roadmap_text(self.config.paths.roadmap)
        except RoadmapError as error:
            self._note_warnings(report, [f"roadmap unreadable: {error}"], ev.ROADMAP_UNREADABLE)
            return False
        # Ingest reads only the tasks changed since its last pass over these same roadmap bytes
        # (the ledger's tasks revision, moved by triggers whoever writes), and nothing at all
        # when none did: then the roadmap is not even parsed (its warnings are in the mark).
        digest = text_digest(text)
        self._roadmap_source = (digest, text)
        mark = self._ingested
        if mark is None:  # a new process: the ledger remembers where the last pass left off
            mark = stored_mark(self.ledger)
        since: int | None = None
        if mark is not None and mark.digest == digest:
            revision, deleted = self.ledger.tasks_revision()
            if (revision, deleted) == (mark.revision, mark.deleted) and (
                mark.warnings is not None
            ):
                self._ingested = mark
                self._note_warnings(report, self._warning_lines(mark.warnings),
                                    ev.ROADMAP_WARNING)
                return True
            if deleted == mark.deleted:  # a deleted task needs the whole diff
                since = mark.revision
        roadmap = self.roadmap
        assert roadmap is not None
        self._note_warnings(report, self._warning_lines(
            (w.line, w.message) for w in roadmap.warnings), ev.ROADMAP_WARNING)
        # Items the ledger has never seen may have landed without it (a new ledger, a merge by
        # hand): a full pass looks on the base branch first. (An incremental pass reads the same
        # roadmap bytes as before, so it has no new items.)
        merged = self.merged_on_base(roadmap, fetch=True) if since is None else None
        report.ingested = self._apply_ingest(roadmap, digest, since, merged)
        return True

    def _apply_ingest(self, roadmap: Roadmap, digest: str, since: int | None,
                      merged: BaseMerges | None) -> list[IngestChange]:
        from oxi_core.engine.ingest import apply_ingest

        done = apply_ingest(self.ledger, roadmap, digest=digest, since=since, merged=merged)
        self._ingested = done.mark
        for change in done.changes:
            if change.kind == "abandoned":
                self._on_abandoned(change.task_id)
        return done.changes

    def settle_ingest_mark(self, report: TickReport) -> None:
        """After the workers: diff what they changed against the roadmap bytes this tick read
        (it normally changes nothing), so the stored mark is current and the next tick, in
        this process or a new `oxi tick`, reads and writes nothing when there is nothing to
        do. A deletion (which needs the whole diff) is left to the next tick."""
        mark, source = self._ingested, self._roadmap_source
        if mark is None or source is None or mark.digest != source[0]:
            return
        revision, deleted = self.ledger.tasks_revision()
        if (revision, deleted) == (mark.revision, mark.deleted) or deleted != mark.deleted:
            return
        roadmap = self.roadmap
        assert roadmap is not None
        report.ingested = [*report.ingested,
                           *self._apply_ingest(roadmap, mark.digest, mark.revision, None)]

    def _warning_lines(self, warnings: Iterable[tuple[int, str]]) -> list[str]:
        name = self.config.paths.roadmap.name
        return [f"{name}:{line}: {message}" for line, message in warnings]

    def merged_on_base(self, roadmap: Roadmap, *, fetch: bool) -> BaseMerges | None:
        """The roadmap's open items the ledger does not know and the base branch has merged
        (a substantive commit names them, as for `oxi roadmap prune`); None when every item is
        known. ``fetch``: look at the remote as it is now, else as last fetched."""
        unknown = [item.id for item in roadmap.open_items]
        known = self.ledger.known_ids(unknown)
        unknown = [task_id for task_id in unknown if task_id not in known]
        if not unknown:
            return None
        policy, root = self.config.policy, self.config.paths.repo_root
        if fetch:
            try:
                self.fetch_origin()
            except GitError as error:  # work from the last fetch; dispatch will fail loudly
                self.log.warning("fetch_failed", error=str(error))
        from oxi_core.engine.ingest import BaseMerges

        ref = f"{policy.remote}/{policy.base_branch}"
        if git.rev_parse(ref, root) is None:
            return BaseMerges(ref)  # nothing merged yet (a new remote)
        from oxi_core.roadmap import find_merged

        relative = self.config.paths.roadmap.relative_to(root).as_posix()
        found = find_merged(root, unknown, ref, roadmap_path=relative)
        return BaseMerges(ref, {match.item_id: match for match in found})

    def _note_warnings(self, report: TickReport, warnings: list[str], event_type: str) -> None:
        """Log warnings every tick, but record them only when they change (idle ticks write
        nothing)."""
        report.warnings = warnings
        for warning in warnings:
            self.log.warning("roadmap_warning", warning=warning)
        digest = text_digest("\n".join(warnings)) if warnings else None
        if self.ledger.state_get(WARNINGS_KEY) != digest:
            self.ledger.state_set(WARNINGS_KEY, digest,
                                  event_type=event_type if warnings else None,
                                  payload={"warnings": warnings})

    def _on_abandoned(self, task_id: str) -> None:
        task = self.ledger.task(task_id)
        if task is None:
            return
        cancel = self.cancels.get(task_id)
        if cancel is not None:
            cancel.set()  # the worker stops its agent and records the cancellation
        if task.pr_number is not None and task_id not in self.workers:
            self.close_pr(task, "Closed by oxi: the item was removed from the roadmap.")

    def close_pr(self, task: Task, comment: str) -> None:
        from oxi_core.models import PullRequestState

        assert task.pr_number is not None
        pr = self.config.forge.get_pr(task.pr_number)
        if pr.state is PullRequestState.OPEN:
            self.config.forge.close_pr(task.pr_number, comment)
            self.record(ev.PR_CLOSED, task_id=task.id,
                        payload={"pr": task.pr_number, "comment": comment})

    def _reap_needed(self) -> bool:
        """Nothing claimed: nothing to judge (and no process table to read)."""
        return bool(self.ledger.query("SELECT 1 FROM tasks WHERE status = ? LIMIT 1",
                                      (str(TaskStatus.DISPATCHED),)))

    def _reap(self, report: TickReport) -> None:
        if not self._reap_needed():
            return
        self._reap_claims(report, frozenset(self.workers))
        self._notify_reaped(report)

    def _reap_claims(self, report: TickReport, skip: frozenset[str]) -> None:
        """Reap the dead claims but those of ``skip`` (this engine's running workers). Safe on
        a worker thread: it reads no engine state an event loop changes."""
        from oxi_core.engine.reaper import reap_zombies

        triage = None
        if self.config.policy.triage:
            from oxi_core.engine.triage import HeartbeatTriage

            triage = HeartbeatTriage(self.config, self.ledger)  # one per tick
        report.reaped = reap_zombies(
            self.ledger, now=self.clock(), timeout_s=self.config.policy.heartbeat_timeout_s,
            host=self.host, skip=skip, triage=triage,
            own=(self.supervisor_pid, self.supervisor_started_at),
        )

    def _notify_reaped(self, report: TickReport) -> None:
        for reaped in report.reaped:
            self.notify_last(ev.ZOMBIE_REAPED, reaped.task_id)

    def _observe(self, report: TickReport) -> None:
        """One list of the open pull requests, then each task's pull request read from it; only
        a pull request that left the list (merged, closed) is asked about on its own."""
        forge = self.config.forge
        listed: dict[int, PullRequest] = {pr.number: pr for pr in forge.list_open_prs()}

        def current(number: int) -> PullRequest:
            known = listed.get(number)
            if known is not None:
                return known
            asked: PullRequest = forge.get_pr(number)
            return asked

        for task in self.ledger.tasks([TaskStatus.DISPATCHED]):
            # A retry whose earlier PR a person closed while this agent runs: stop the worker.
            if task.pr_number is None or task.id not in self.cancels:
                continue
            from oxi_core.models import PullRequestState  # only with a pull request to read
            try:
                pr = current(task.pr_number)
            except ForgeUnavailable:
                continue  # asked again next tick
            if pr.state is PullRequestState.CLOSED and self.ledger.transition(
                task.id, TaskStatus.ABANDONED, event_type=ev.PR_CLOSED,
                payload={"pr": pr.number, "reason": pr.closed_reason or "closed by a person"},
                expect=[TaskStatus.DISPATCHED],
            ) is not None:
                self.cancels[task.id].set()
        for task in self.ledger.tasks([TaskStatus.IN_REVIEW]):
            if task.pr_number is None or task.id in self.workers:
                continue
            from oxi_core.models import PullRequestState

            try:
                pr = current(task.pr_number)
                if pr.state is PullRequestState.OPEN and pr.auto_merge_armed:
                    pr = forge_extras.merge_if_ready(forge, pr.number) or pr
                self.settle_pr(task, pr, report)
            except ForgeUnavailable as error:
                # Rate limited or down: this pull request waits for a later tick.
                self.log.warning("forge_unavailable", task_id=task.id, error=str(error))
                continue
            if pr.state in (PullRequestState.MERGED, PullRequestState.CLOSED):
                listed.pop(pr.number, None)
        self._open_prs = list(listed.values())

    def settle_pr(self, task: Task, pr: PullRequest, report: TickReport | None = None,
                  *, how: str = "") -> None:
        """Move an in-review task along after what its pull request became."""
        from oxi_core.models import PullRequestState

        if pr.state is PullRequestState.MERGED:
            payload: dict[str, Any] = {"pr": pr.number, "merged_sha": pr.merged_sha}
            if how:
                payload["how"] = how
            moved = self.ledger.transition(
                task.id, TaskStatus.MERGED, event_type=ev.TASK_MERGED, payload=payload,
                expect=[TaskStatus.IN_REVIEW],
            )
            if moved is not None:
                self.merged_log.append(task.id)
                if report is not None:
                    report.merged.append(task.id)
                self._base_moved()
                self._delete_branch(task, pr)
        elif pr.state is PullRequestState.CLOSED:
            # Closed by a person (or by oxi): never reopened, never armed again.
            self.ledger.transition(
                task.id, TaskStatus.ABANDONED, event_type=ev.PR_CLOSED,
                payload={"pr": pr.number, "reason": pr.closed_reason or "closed by a person"},
                expect=[TaskStatus.IN_REVIEW],
            )
        elif pr.state is PullRequestState.CONFLICTED:
            # The task is redone on a fresh branch pushed to the same pull request (a hosted
            # forge keeps it open): auto-merge armed for the old head must not merge the new
            # one before the critic has seen it.
            disarmed = pr.auto_merge_armed and forge_extras.disarm_auto_merge(
                self.config.forge, pr.number)
            self._base_moved()
            self.ledger.transition(
                task.id, TaskStatus.PLANNED, event_type=ev.PR_CONFLICTED,
                payload={"pr": pr.number, "reason": pr.closed_reason,
                         "auto_merge_disarmed": disarmed},
                expect=[TaskStatus.IN_REVIEW], last_error=f"conflict: {pr.closed_reason}",
                pr_number=None,
            )
        elif pr.state is PullRequestState.OPEN:
            if self._head_moved(task, pr):
                return
            self._note_checks(task, pr)
            self._enforce_auto_merge(task, pr, report)

    def _base_moved(self) -> None:
        """The base branch moved on the remote (a merge there, a push by someone): the next
        worktree starts from a fresh fetch, never from the view fetched a moment ago, or it
        would start from the old base and conflict (T0-104)."""
        with self._fetch_lock:
            self._fetched_at = -1e9

    def _delete_branch(self, task: Task, pr: PullRequest) -> None:
        try:
            if forge_extras.delete_branch(self.config.forge, pr.branch):
                self.record(ev.PR_BRANCH_DELETED, task_id=task.id,
                            payload={"pr": pr.number, "branch": pr.branch})
        except Exception as error:  # the merge stands; a branch left behind is only clutter
            self.log.warning("branch_not_deleted", task_id=task.id, branch=pr.branch,
                             error=f"{type(error).__name__}: {error}")

    def _last(self, event_type: str, task_id: str) -> Event | None:
        found = self.ledger.events(types=[event_type], task_id=task_id, newest_first=True,
                                   limit=1)
        return found[0] if found else None

    def delivered_head(self, task_id: str) -> str | None:
        """The commit oxi last pushed for this task (None in a ledger from before heads were
        recorded)."""
        pushed = self._last(ev.BRANCH_PUSHED, task_id)
        head = pushed.payload.get("head") if pushed is not None else None
        return head if isinstance(head, str) and head else None

    def _head_moved(self, task: Task, pr: PullRequest) -> bool:
        """Someone else pushed to the branch under review: what the critic approved is not what
        would merge. Auto-merge is turned off and a person decides (recorded and notified once
        per head)."""
        expected = self.delivered_head(task.id)
        if not pr.head_sha or expected is None or pr.head_sha == expected:
            return False
        last = self._last(ev.PR_HEAD_MOVED, task.id)
        if last is None or last.payload.get("head") != pr.head_sha:
            disarmed = pr.auto_merge_armed and forge_extras.disarm_auto_merge(
                self.config.forge, pr.number)
            self.record(ev.PR_HEAD_MOVED, task_id=task.id, notify=True, payload={
                "pr": pr.number, "pushed": expected, "head": pr.head_sha,
                "auto_merge_disarmed": disarmed,
                "reason": "the branch moved after oxi pushed it; a person decides now"})
        return True

    def _note_checks(self, task: Task, pr: PullRequest) -> None:
        """Record the head's checks when they change (failing ones are notified)."""
        from oxi_core.models import ChecksState

        if pr.checks is ChecksState.UNKNOWN:
            return
        last = self.ledger.events(types=[ev.PR_CHECKS, ev.PR_CHECKS_FAILED], task_id=task.id,
                                  newest_first=True, limit=1)
        if last and last[0].payload.get("head") == pr.head_sha and (
            last[0].payload.get("checks") == str(pr.checks)
        ):
            return
        failing = pr.checks is ChecksState.FAILING
        self.record(ev.PR_CHECKS_FAILED if failing else ev.PR_CHECKS, task_id=task.id,
                    notify=failing,
                    payload={"pr": pr.number, "head": pr.head_sha, "checks": str(pr.checks)})

    def _enforce_auto_merge(self, task: Task, pr: PullRequest,
                            report: TickReport | None = None) -> None:
        """T2-44: an approved PR must have auto-merge armed; re-arm, notify if it will not."""
        if not self.config.policy.auto_merge:
            return
        if not self.approved(task.id, pr.number, pr.head_sha):
            return
        if pr.auto_merge_armed:
            self._confirm_armed(task, pr)
            return
        refused = self._last(ev.AUTO_MERGE_REFUSED, task.id)
        if refused is not None and refused.payload.get("pr") == pr.number:
            if self.config.policy.auto_merge_fallback == "direct":
                self.merge_directly(task, pr, report)
                return
            if (self.clock() - parse_ts(refused.ts)).total_seconds() < REARM_REFUSED_AFTER_S:
                return  # the operator was told; ask the repository again later, not each tick
        self.arm_auto_merge(task, pr, report, rearm=True)

    def arm_auto_merge(self, task: Task, pr: PullRequest, report: TickReport | None = None,
                       *, rearm: bool = False) -> None:
        """Arm auto-merge on an approved pull request (the one code path for the approval and
        for the re-arming of T2-44). A refusal is an event and a notification; then the
        operator's `auto_merge_fallback` decides."""
        from oxi_core.models import PullRequestState

        forge = self.config.forge
        try:
            newly = forge.arm_auto_merge(pr.number)
        except AutoMergeUnavailable as error:
            self.record(ev.AUTO_MERGE_REFUSED, task_id=task.id, notify=True, payload={
                "pr": pr.number, "reason": error.reason, "hint": error.hint or "",
                "fallback": self.config.policy.auto_merge_fallback})
            if self.config.policy.auto_merge_fallback == "direct":
                self.merge_directly(task, pr, report)
            return
        after = forge.get_pr(pr.number)
        # The approval's request is recorded as made; a re-arm only once the forge shows it
        # (a request dropped on the way is re-armed by the next observation, quietly).
        if not rearm or after.auto_merge_armed or after.state is PullRequestState.MERGED:
            payload: dict[str, Any] = {"pr": pr.number, "head": pr.head_sha}
            payload.update({"rearmed": True} if rearm else {"already_armed": not newly})
            self.record(ev.AUTO_MERGE_ARMED, task_id=task.id, payload=payload)
            if after.state is not PullRequestState.OPEN:
                self.settle_pr(task, after, report)
            return
        if after.state is not PullRequestState.OPEN:
            self.settle_pr(task, after, report)
            return
        last = self.ledger.events(types=[ev.AUTO_MERGE_ARMED, ev.AUTO_MERGE_NOT_ARMED],
                                  task_id=task.id, newest_first=True, limit=1)
        if last and last[0].type == ev.AUTO_MERGE_NOT_ARMED and last[0].payload.get("pr") == (
            pr.number
        ):
            return  # recorded and notified already; keep re-arming quietly every tick
        self.record(ev.AUTO_MERGE_NOT_ARMED, task_id=task.id, payload={"pr": pr.number},
                    notify=True)

    def _confirm_armed(self, task: Task, pr: PullRequest) -> None:
        """Auto-merge as the forge shows it, read back once and recorded."""
        last = self._last(ev.AUTO_MERGE_CONFIRMED, task.id)
        if last is not None and last.payload.get("pr") == pr.number and (
            last.payload.get("head") == pr.head_sha
        ):
            return
        self.record(ev.AUTO_MERGE_CONFIRMED, task_id=task.id,
                    payload={"pr": pr.number, "head": pr.head_sha})

    def merge_directly(self, task: Task, pr: PullRequest,
                       report: TickReport | None = None) -> None:
        """The guarded direct merge chosen by `auto_merge_fallback = "direct"`: exactly the
        approved head, once its checks are green. Why it waits is recorded when it changes."""
        from oxi_core.models import PullRequestState

        attempt = forge_extras.merge_now(self.config.forge, pr.number, pr.head_sha)
        if attempt is None:
            return  # this forge cannot merge directly: it waits for a person
        if attempt.merged and attempt.pr is not None:
            self.settle_pr(task, attempt.pr, report, how="direct")
            return
        if attempt.pr is not None and attempt.pr.state is not PullRequestState.OPEN:
            self.settle_pr(task, attempt.pr, report)
            return
        last = self._last(ev.PR_MERGE_WAITING, task.id)
        if last is None or last.payload.get("waiting") != attempt.waiting or (
            last.payload.get("pr") != pr.number
        ):
            self.record(ev.PR_MERGE_WAITING, task_id=task.id,
                        payload={"pr": pr.number, "waiting": attempt.waiting})

    def approved(self, task_id: str, pr_number: int, head_sha: str = "") -> bool:
        """The critic's last verdict approved this pull request (at this head, when both the
        verdict and the caller know the head)."""
        verdict = self._last(ev.CRITIC_VERDICT, task_id)
        if verdict is None or verdict.payload.get("verdict") != "APPROVE" or (
            verdict.payload.get("pr") != pr_number
        ):
            return False
        reviewed = verdict.payload.get("head")
        return not (head_sha and reviewed and reviewed != head_sha)

    # -- dispatch -------------------------------------------------------------------------

    def capacity(self) -> int:
        if self._capacity is not None:
            return self._capacity()
        return self.config.policy.max_concurrent

    def recent_remote(self, max_age_s: float = FETCH_MAX_AGE_S) -> RemoteView | None:
        """The remote as this process fetched it within ``max_age_s`` (what `fetch_origin`
        would return without fetching), else None. Never waits for a fetch under way (the
        event loop calls it): the view is set before its time, so a recent time means a view
        at least that recent."""
        if time.monotonic() - self._fetched_at < max_age_s:
            return self._remote_view
        return None

    def fetch_origin(self, max_age_s: float = FETCH_MAX_AGE_S) -> RemoteView:
        """Fetch the remote, unless this process did within ``max_age_s``: a burst of workers
        starting together shares one fetch. Returns the remote's branches as fetched: a branch
        it has is continued, and a worktree whose clean HEAD is still its base commit changed
        nothing."""
        with self._fetch_lock:
            if time.monotonic() - self._fetched_at < max_age_s:
                return self._remote_view
            remote = self.config.policy.remote
            root = self.config.paths.repo_root
            with repo_lock(self.config.paths.state_dir).hold():
                # --prune: a branch merged (and deleted) on the remote is not continued.
                git.git(["fetch", "--quiet", "--prune", remote], root,
                        env=forge_extras.git_env(self.config.forge))
                heads = git.remote_heads(remote, root)
            self._remote_view = RemoteView(heads.get(self.config.policy.base_branch), heads)
            self._fetched_at = time.monotonic()
            return self._remote_view

    def pause(self, reason: str) -> None:
        """The killswitch, thrown by the engine itself (`oxi resume` undoes it). Only the
        ledger holds it: every tick reads it, so a running `oxi saturate` dispatches again
        as soon as `oxi resume` (another process) clears it. (``stop_dispatching`` is for
        stopping this process for good, and is never cleared.)"""
        if not self.paused():
            self.ledger.state_set(PAUSED_KEY, self.ledger.now_iso(), event_type=ev.ENGINE_PAUSED,
                                  payload={"reason": reason, "by": "engine"})
            self.notify_last(ev.ENGINE_PAUSED, None)

    def paused(self) -> bool:
        return self.ledger.state_get(PAUSED_KEY) is not None

    def due(self, task: Task) -> bool:
        if task.status is TaskStatus.RETRYING:
            return task.retry_due_at is None or parse_ts(task.retry_due_at) <= self.clock()
        return task.status is TaskStatus.PLANNED

    def candidates(self, likely_needed: int = 32) -> Iterator[Task]:
        """Dispatchable tasks in priority order, read lazily (the first read sized to what the
        caller will likely take)."""
        tasks = self.ledger.iter_tasks([TaskStatus.PLANNED, TaskStatus.RETRYING],
                                       first_page=max(4, likely_needed))
        return (t for t in tasks if self.due(t))

    def estimate(self, task: Task) -> float:
        """Cost estimate: the mean of recent results in the same tier, else the model's default."""
        model = task.model or self.worker_model()
        rows = self.ledger.query(
            "SELECT e.cost_usd FROM events e JOIN tasks t ON t.id = e.task_id "
            "WHERE e.type = ? AND t.tier = ? ORDER BY e.id DESC LIMIT ?",
            (ev.DISPATCH_RESULT, task.tier, ESTIMATE_HISTORY),
        )
        if rows:
            return sum(float(r[0]) for r in rows) / len(rows)
        return self.config.policy.default_estimate_for(model)

    def worker_model(self) -> str | None:
        worker = self.config.worker
        return worker.model_id() if worker is not None else None

    def engine_state(self) -> EngineState:
        from oxi_core.engine.state import EngineState

        now = self.clock()
        # One read: a task going from dispatched to in review between two reads would be in
        # neither, and the file-overlap gate would not see it.
        unsettled = self.ledger.tasks([TaskStatus.DISPATCHED, TaskStatus.IN_REVIEW])
        in_flight = tuple(t for t in unsettled if t.status is TaskStatus.DISPATCHED)
        in_review = tuple(t for t in unsettled if t.status is TaskStatus.IN_REVIEW)
        reserved = sum(self.estimate(t) for t in in_flight)
        return EngineState(
            now=now, policy=self.config.policy, in_flight=in_flight,
            open_prs=tuple(self._open_prs), spent_today_usd=self.spent_today(now),
            reserved_usd=reserved, worker_model=self.worker_model(), estimate=self.estimate,
            daily_budget_usd=self.config.policy.budget_per_day_usd, in_review=in_review,
        )

    def spent_today(self, now: datetime | None = None) -> float:
        return self.ledger.spend_since(utc_day_start(now or self.clock()))

    def gate_decision(self, task: Task, state: EngineState) -> tuple[str, GateDecision]:
        from oxi_core.models import GateAction, GateDecision

        for name, gate in self.config.instances["gates"].items():
            if task.budget_released and self.config.specs["gates"][name].type == "budget":
                continue  # the operator released this task's hold
            decision: GateDecision = gate.check(task, state)
            if decision.action is not GateAction.ALLOW:
                return name, decision
        return "", GateDecision.allow()

    def _free_slots(self, report: TickReport) -> int:
        """Slots free for new agents (the capacity is recorded in the report)."""
        if self.config.worker is None:
            raise OxiError("no worker agent is configured",
                           hint="add [agents.NAME] to oxi.toml and set [roles] worker = NAME")
        report.capacity = self.capacity()
        return report.capacity - self.agents_in_flight()

    def _dispatch(self, report: TickReport, slots: int) -> None:
        """Claim candidates for up to ``slots`` free slots and start a worker (an asyncio task
        of the running loop) for each."""
        import asyncio

        from oxi_core.engine.dispatch import run_worker
        from oxi_core.engine.routes import agent_model, route_worker
        from oxi_core.models import GateAction

        roadmap: Roadmap | None = None  # parsed when the first candidate needs its item
        # What the gates see changes only when a task is claimed: built for the first candidate
        # and again after each claim, not per candidate (a long run of deferred candidates would
        # otherwise query it each time) and not at all when nothing is left to dispatch.
        state: EngineState | None = None
        for task in self.candidates(likely_needed=2 * slots):
            if slots <= 0 or self.stop_dispatching:
                break
            roadmap = roadmap or self.roadmap
            item = roadmap.get(task.id) if roadmap is not None else None
            if item is None or item.done:
                continue
            if state is None:
                state = self.engine_state()
            gate, decision = self.gate_decision(task, state)
            if decision.action is GateAction.DEFER:
                self._defer(task, gate, decision, report)
                if decision.details.get("daily_budget_reached"):
                    self._budget_reached(decision, report)
                    break
                continue
            if decision.action in (GateAction.HOLD, GateAction.SKIP):
                self._hold_or_skip(task, gate, decision, report)
                continue
            route = route_worker(self.config, task)
            model = agent_model(self.config, route.agent, route.model)
            # The run's cap and estimate, as the budget gate saw them: what today's spend may
            # pass the daily budget by (check_daily_overrun) is the sum of cap - estimate.
            claimed = self.ledger.claim(
                task.id, event_type=ev.TASK_CLAIMED,
                payload={"host": self.host, "supervisor_pid": self.supervisor_pid,
                         "attempt": task.attempts + 1, "estimate_usd": state.estimate(task),
                         "cap_usd": self.config.policy.task_cap_for(
                             task.model or state.worker_model),
                         "agent": route.agent, "model": model, "route": route.rule},
                worker_host=self.host, supervisor_pid=self.supervisor_pid,
                supervisor_started_at=self.supervisor_started_at, worker_pid=None,
                worker_pgid=None, worker_started_at=None, deferred_reason=None,
                agent=route.agent, model=model,
            )
            if not claimed:
                continue  # another engine took it first
            self.routes[task.id] = route
            self._starting.add(task.id)
            report.decide(task, "dispatch")
            slots -= 1
            state = None
            cancel = asyncio.Event()
            self.cancels[task.id] = cancel
            worker = asyncio.create_task(run_worker(self, task.id, item, cancel))
            self.workers[task.id] = worker
            worker.add_done_callback(functools.partial(self._forget_worker, task.id))

    @property
    def prepared(self) -> PreparedWorktrees:
        """Worktrees made ahead for the next tasks (`oxi saturate` sets how many; T2-47);
        imported when first needed: a tick that dispatches nothing never does."""
        if self._prepared is None:
            from oxi_core.engine.prepared import PreparedWorktrees

            self._prepared = PreparedWorktrees(self)
        return self._prepared

    def agents_in_flight(self) -> int:
        """Dispatched tasks whose agent has not finished: what a concurrency slot holds."""
        rows = self.ledger.query(AGENTS_IN_FLIGHT_SQL, (ev.DISPATCH_RESULT,))
        return int(rows[0][0])

    def agent_started(self, task_id: str) -> None:
        """A claim's agent has started (or its worker ended without one)."""
        self._starting.discard(task_id)
        if not self._starting and self._started is not None:
            self._started.set()
            self._started = None

    async def wait_for_starts(self, timeout_s: float = 2.0) -> None:
        """Until every claim of this engine has started its agent (at most ``timeout_s``): a
        worker whose agent has ended lets a freed slot's refill start first, rather than
        competing with it for the machine (git processes of its delivery)."""
        import asyncio

        if not self._starting:
            return
        if self._started is None:
            self._started = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), timeout_s)

    def _forget_worker(self, task_id: str, _done: asyncio.Task[None]) -> None:
        self.agent_started(task_id)
        self.workers.pop(task_id, None)
        self.progress.pop(task_id, None)
        self.routes.pop(task_id, None)
        self.cancels.pop(task_id, None)

    def _hold_or_skip(self, task: Task, gate: str, decision: GateDecision,
                      report: TickReport) -> None:
        """Park the task until an operator releases it (hold), or refuse it for good (skip);
        either way the operator hears of it: nothing will happen to it on its own."""
        from oxi_core.models import GateAction

        hold = decision.action is GateAction.HOLD
        moved = self.ledger.transition(
            task.id, TaskStatus.HELD if hold else TaskStatus.SKIPPED,
            event_type=ev.TASK_HELD if hold else ev.TASK_SKIPPED,
            payload={"gate": gate, "reason": decision.reason, **decision.details},
            expect=[TaskStatus.PLANNED, TaskStatus.RETRYING],
            held_reason=decision.reason if hold else None,
            last_error=task.last_error if hold else decision.reason,
        )
        report.decide(task, "hold" if hold else "skip", decision.reason)
        if moved is not None:
            self.notify_last(ev.TASK_HELD if hold else ev.TASK_SKIPPED, task.id)

    def _defer(self, task: Task, gate: str, decision: GateDecision, report: TickReport) -> None:
        report.decide(task, "defer", decision.reason)
        if task.deferred_reason == decision.reason:
            return  # already recorded; an unchanged deferral writes nothing
        self.ledger.update_task(
            task.id, event_type=ev.TASK_DEFERRED,
            payload={"gate": gate, "reason": decision.reason, **decision.details},
            last_deferred_at=self.ledger.now_iso(), deferred_reason=decision.reason,
        )

    def check_daily_overrun(self) -> None:
        """Pause when agents spent more today than the budget gate can account for.

        The gate dispatches a run only while today's spend plus the estimates in flight fit the
        daily budget, so runs that keep to their per-task caps pass it by at most the sum of
        their (cap - estimate). More than that means an agent overran its cap: the killswitch
        is thrown until an operator looks (`oxi resume`)."""
        daily = self.config.policy.budget_per_day_usd
        day = utc_day_start(self.clock())
        spent, slack = self.ledger.query(DAILY_OVERRUN_SQL,
                                         (ev.DISPATCH_RESULT, day, ev.TASK_CLAIMED, day))[0]
        if spent > daily + slack + 1e-9:
            self.pause(f"agents spent ${spent:.2f} today, over the daily budget of ${daily:.2f} "
                       f"by more than the caps of today's runs allow (${slack:.2f}): an agent "
                       "overran its cap")

    def _budget_reached(self, decision: GateDecision, report: TickReport) -> None:
        report.budget_reached = True
        today = utc_day_start(self.clock())
        if self.ledger.state_get(BUDGET_DAY_KEY) == today:
            return
        self.ledger.state_set(BUDGET_DAY_KEY, today, event_type=ev.DAILY_BUDGET_REACHED,
                              payload={**decision.details, "reason": decision.reason})
        self.notify_last(ev.DAILY_BUDGET_REACHED, None)

    # -- events and notifications ---------------------------------------------------------

    def record_forge_report(self, report: TickReport | None = None) -> None:
        """The forge's requests since the last record (one event per tick that made any), and
        what it noticed (rate limits, retries, outages) as events of their own."""
        try:
            taken = forge_extras.take_report(self.config.forge)
        except Exception as error:  # counting must never stop a tick
            self.log.warning("forge_report_failed", error=f"{type(error).__name__}: {error}")
            return
        if taken is None:
            return
        for notice in taken.notices:
            event_type = NOTICE_EVENTS.get(notice.kind, ev.FORGE_NOTICE)
            self.record(event_type, notify=event_type == ev.FORGE_RATE_LIMITED,
                        payload={"forge": self.config.roles.forge, "kind": notice.kind,
                                 "message": notice.message, **notice.details})
        if taken.requests or taken.notices:
            payload = {"forge": self.config.roles.forge, "requests": taken.requests,
                       "counted": taken.counted, **taken.details}
            if taken.requests:
                self.record(ev.FORGE_REQUESTS, payload=payload)
            if report is not None:
                report.forge_requests = payload

    def record(
        self, event_type: str, *, task_id: str | None = None, payload: dict[str, Any] | None = None,
        cost_usd: float = 0.0, session_id: str | None = None, notify: bool = False,
    ) -> int:
        event_id = self.ledger.append(event_type, task_id=task_id, payload=payload,
                                      cost_usd=cost_usd, session_id=session_id)
        if notify:
            self.notify_last(event_type, task_id)
        return event_id

    def notify_last(self, event_type: str, task_id: str | None) -> None:
        found = self.ledger.events(types=[event_type], task_id=task_id, newest_first=True,
                                   limit=1)
        if found:
            self.notify(found[0])

    def notify(self, event: Event) -> None:
        """Hand the event to every notifier on a background thread: a slow webhook must not
        stall the workers. `flush_notifications` waits for them (in order)."""
        from oxi_core.builtins.notifiers import NOTIFY_EVENT_TYPES

        if event.type not in NOTIFY_EVENT_TYPES:
            return
        with self._notify_lock:
            if self._notify_pool is None:
                import concurrent.futures

                self._notify_pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="oxi-notify")
            self._notifications = [f for f in self._notifications if not f.done()]
            self._notifications.append(self._notify_pool.submit(self._deliver, event))

    def flush_notifications(self, timeout_s: float = 30.0) -> None:
        if not self._notifications:
            return
        import concurrent.futures

        concurrent.futures.wait(self._notifications, timeout=timeout_s)
        self._notifications = [f for f in self._notifications if not f.done()]

    def _deliver(self, event: Event) -> None:
        from oxi_core.builtins.notifiers import deliver

        deliver(self.config.instances["notifiers"], self.ledger, event)

    # -- dry run --------------------------------------------------------------------------

    def plan(self) -> TickReport:
        """What a tick would do, computed without writing anything."""
        from oxi_core.engine.ingest import CLOSED_BY_REMOVAL, diff_roadmap
        from oxi_core.models import GateAction
        from oxi_core.roadmap import load_roadmap

        roadmap = load_roadmap(self.config.paths.roadmap)
        # What ingest's full pass reads: every task a tick could change or dispatch.
        tasks = self.ledger.tasks_named_or_in([item.id for item in roadmap.items],
                                              CLOSED_BY_REMOVAL)
        changes = diff_roadmap(tasks, roadmap)
        by_id = {t.id: t for t in tasks}
        planned: list[Task] = [t for t in tasks if self.due(t)]
        merged = self.merged_on_base(roadmap, fetch=False)  # a dry run fetches nothing
        merged_ids = merged.matches if merged is not None else {}
        for change in changes:
            if change.kind == "new" and change.task_id in merged_ids:
                continue
            if change.kind in ("new", "reopened"):
                base = by_id.get(change.task_id)
                fields = {**change.fields}
                planned.append(Task(id=change.task_id, status=TaskStatus.PLANNED,
                                    attempts=base.attempts if base else 0, **fields))
        planned.sort(key=lambda t: (t.tier, t.position, t.id))
        report = TickReport(
            dry_run=True, paused=self.paused(), capacity=self.capacity(),
            ingested=[c for c in changes if not (c.kind == "new" and c.task_id in merged_ids)],
            merged_on_base=[{"task": task_id, "on": merged.ref, "commit": match.commit}
                            for task_id, match in merged_ids.items()] if merged else [],
            warnings=[f"{self.config.paths.roadmap.name}:{w.line}: {w.message}"
                      for w in roadmap.warnings],
            in_flight=[t.id for t in tasks if t.status is TaskStatus.DISPATCHED],
        )
        slots = max(0, self.capacity() - self.agents_in_flight())
        state = attrs.evolve(self.engine_state(), open_prs=())
        for task in planned:
            if roadmap.get(task.id) is None:
                continue
            _gate, decision = self.gate_decision(task, state)
            if decision.action is not GateAction.ALLOW:
                report.decide(task, str(decision.action), decision.reason)
            elif slots <= 0:
                report.decide(task, "no_slot", "every slot is taken")
            else:
                slots -= 1
                state = attrs.evolve(state, in_flight=(*state.in_flight, task))
                report.decide(task, "dispatch")
        return report
