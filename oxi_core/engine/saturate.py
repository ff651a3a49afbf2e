"""`oxi saturate`: tick after tick with at most N agents running, until told to stop.

SIGTERM or SIGINT stops dispatching and waits for in-flight workers (they are never killed),
records them, removes the PID file and exits 0. Reaching the daily budget does the same. oxi.toml
is re-read between ticks; an invalid edit is recorded and the last good config kept. A failing
phase is an event and a retry next tick, never the daemon's death.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from oxi_core import log
from oxi_core.config import OxiConfig, load_config
from oxi_core.engine.engine import Engine, TickReport
from oxi_core.engine.pidfile import PidFile
from oxi_core.engine.probe import recommend_concurrency
from oxi_core.errors import OxiError
from oxi_core.ledger import events as ev
from oxi_core.models import Event

# What a worker's end records between ticks, which saturate's per-tick line reports.
TICK_OUTCOMES = (ev.TASK_MERGED, ev.TASK_FAILED, ev.RETRY_SCHEDULED, ev.TASK_REOPENED,
                 ev.PR_CONFLICTED, ev.TASK_CANCELLED)

# How often saturate looks for a freed slot while agents run (one indexed COUNT, ~0.02 ms),
# besides being woken by its own agents' ends: another process's agent, a worker that ended
# before its agent ran.
SLOT_POLL_S = 0.025


@attrs.define
class SaturateResult:
    ticks: int = 0
    dispatched: int = 0
    stopped_by: str = ""
    waited_for: list[str] = attrs.field(factory=list)


class Saturate:
    def __init__(
        self, config: OxiConfig, *, concurrency: int, max_cost_per_day: float | None = None,
        interval_s: float | None = None, max_ticks: int | None = None,
        capacity: Callable[[int], int] | None = None,
        on_tick: Callable[[int, TickReport, list[Event]], None] | None = None,
    ) -> None:
        self.concurrency = concurrency
        # Told after each tick: its number, its report, and the outcomes recorded since the
        # last tick (merges and failures of workers that ended meanwhile).
        self.on_tick = on_tick
        self._seen_event_id = 0
        self.max_cost_per_day = max_cost_per_day
        self.config = self._apply_overrides(config)
        self.engine = Engine(self.config, capacity=self._capacity)
        # Each slot's next task has its worktree ready before the slot frees (T2-47).
        self.engine.prepared.ahead = concurrency
        self.interval_s = interval_s if interval_s is not None else config.policy.tick_interval_s
        self.max_ticks = max_ticks
        self._probe = capacity
        self.stop = asyncio.Event()
        self._agent_done = asyncio.Event()
        self.engine.on_agent_done = self._refill
        self._refilled: TickReport | None = None  # what refills did since the last tick
        self.stopped_by = ""
        self._config_mtime = self._mtime(config.path)
        self._bad_mtime: float | None = None

    def _apply_overrides(self, config: OxiConfig) -> OxiConfig:
        policy = attrs.evolve(config.policy, max_concurrent=self.concurrency)
        if self.max_cost_per_day is not None:
            policy = attrs.evolve(policy, budget_per_day_usd=self.max_cost_per_day)
        config.policy = policy
        return config

    def _capacity(self) -> int:
        if self._probe is not None:
            return self._probe(self.concurrency)
        return recommend_concurrency(ceiling=self.concurrency).recommended

    @staticmethod
    def _mtime(path: Path | None) -> float | None:
        try:
            return path.stat().st_mtime if path else None
        except OSError:
            return None

    def request_stop(self, why: str) -> None:
        if not self.stop.is_set():
            self.stopped_by = why
            self.engine.stop_dispatching = True
            self.stop.set()

    def reload_config(self) -> None:
        """Pick up oxi.toml edits between ticks; keep the last good config on a bad one."""
        path = self.config.path
        mtime = self._mtime(path)
        if mtime is None or mtime == self._config_mtime or mtime == self._bad_mtime:
            return
        try:
            fresh = load_config(path)
            if self.config.worker_override is not None:  # `--worker` holds for the whole run
                fresh.override_worker(self.config.worker_override)
        except OxiError as error:
            self._bad_mtime = mtime
            self.engine.log.error("config_reload_failed", error=str(error))
            self.engine.record(ev.CONFIG_RELOAD_FAILED, payload={"error": str(error)},
                               notify=True)
            return
        fresh.context.use_ledger(self.engine.ledger)
        self.config = self._apply_overrides(fresh)
        self.engine.config = self.config
        self._config_mtime = mtime
        self._bad_mtime = None
        self.engine.record(ev.CONFIG_RELOADED, payload={"path": str(path)})

    async def run(self) -> SaturateResult:
        result = SaturateResult()
        self._started_at = self.engine.ledger.now_iso()
        pidfile = PidFile(self.config.paths.saturate_pid)
        pidfile.acquire()
        log.prepare()  # not when the first agent's result is logged: its slot would wait
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signal.Signals(signum).name)
        try:
            self.engine.record(ev.SATURATE_STARTED, payload={
                "concurrency": self.concurrency, "max_cost_per_day": self.max_cost_per_day,
                "took_over_stale_pid_file": pidfile.took_over})
            await self._loop(result)
            waiting = sorted(self.engine.workers)
            if waiting:
                self.engine.record(ev.SATURATE_STOPPING, payload={
                    "reason": self.stopped_by, "waiting_for": waiting})
            await self.engine.prepared.discard_all()
            await self.engine.wait_for_workers()
            self.engine.observe_now()
            await asyncio.to_thread(self.engine.flush_notifications)
            result.waited_for = waiting
            result.stopped_by = self.stopped_by
            self.engine.record(ev.SATURATE_STOPPED, payload={
                "reason": self.stopped_by, "ticks": result.ticks,
                "waited_for": waiting, "dispatched": result.dispatched})
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            pidfile.release()
        return result

    def _refill(self) -> None:
        """One of this engine's agents ended (its result recorded): claim its slot's next
        task at once, from the worker that ran it, then wake the loop (its tick follows)."""
        try:
            if not self.stop.is_set():
                self._refilled = self.engine.refill(self._refilled)
        except Exception as error:  # never the ended worker's failure: the tick dispatches
            self.engine.log.error("refill_failed", error=f"{type(error).__name__}: {error}")
        finally:
            self._agent_done.set()

    async def _loop(self, result: SaturateResult) -> None:
        while not self.stop.is_set():
            self.reload_config()
            refilled, self._refilled = self._refilled, None
            report = await self.engine.tick(refilled)
            self.engine.record_forge_report(report)
            result.ticks += 1
            if self.on_tick is not None:
                self.on_tick(result.ticks, report, self._outcomes_since_last_tick())
            result.dispatched += len(report.dispatched)
            if not report.dispatched:
                # (After a dispatch, the refresh waits for the new agents to start: it must
                # not slow their start-up.)
                self.engine.prepared.schedule_refresh()
            if report.budget_reached:
                self.request_stop("daily_budget_reached")
                break
            if self.max_ticks is not None and result.ticks >= self.max_ticks:
                self.request_stop("max_ticks")
                break
            await self._sleep()

    def _outcomes_since_last_tick(self) -> list[Event]:
        found = self.engine.ledger.events(after_id=self._seen_event_id, types=TICK_OUTCOMES)
        if not self._seen_event_id:  # the first tick: only what this run does from now on
            found = [e for e in found if e.ts >= self._started_at]
        newest = self.engine.ledger.events(newest_first=True, limit=1)
        self._seen_event_id = newest[0].id if newest else self._seen_event_id
        return found

    async def _sleep(self) -> None:
        """Until the next tick: the interval, or sooner when a slot frees.

        A slot frees when an agent's result is recorded (``Engine.agents_in_flight``), well
        before its worker ends (push, PR, review, merge, worktree removal): waking only when
        workers end would leave the slot idle meanwhile.
        """
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.stop.wait())}
        if self.engine.workers:
            waiters.add(asyncio.ensure_future(self._slot_freed()))
        workers = set(self.engine.workers.values())
        await asyncio.wait(waiters | workers, timeout=self.interval_s,
                           return_when=asyncio.FIRST_COMPLETED)
        for future in waiters:
            future.cancel()

    async def _slot_freed(self) -> None:
        self._agent_done.clear()
        before = self.engine.agents_in_flight()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._agent_done.wait(), SLOT_POLL_S)
            self._agent_done.clear()
            if self.engine.agents_in_flight() < before:
                return
