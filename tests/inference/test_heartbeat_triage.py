"""Heartbeat triage (T2-38): the routed heartbeat-triage model says why a reaped task got stuck;
off, the reaper writes exactly what it wrote before; a down gateway disables it for the tick."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psutil

from oxi_core.agentic.types import CanonicalEvent, CanonicalKind
from oxi_core.config import load_config
from oxi_core.engine.engine import PAUSED_KEY, Engine, TickReport
from oxi_core.engine.reaper import reap_zombies, this_host
from oxi_core.engine.transcripts import TranscriptWriter, transcript_path
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import isoformat, utcnow
from oxi_core.tasks import Task, TaskStatus
from oxi_core.testing import repos
from oxi_core.testing.model_server import RecordedRequest, Reply, Response, Step, Text, Usage
from oxi_core.testing.openai_server import OpenAIServer
from tests.conftest import roadmap

ITEMS = roadmap(("T1-5", "rebuild the index", "x"), ("T1-6", "rotate logs", "y"))


def dead_pid() -> tuple[int, float]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    return proc.pid, started


DEAD_WORKER = dead_pid()
DEAD_SUPERVISOR = dead_pid()
LAST_PROGRESS = isoformat(utcnow() - timedelta(hours=2))


def plant_stuck(ledger: Ledger, task_id: str) -> None:
    """A dispatched task whose worker and supervisor are gone, with a trail in the ledger."""
    ledger.insert_task(Task(
        id=task_id, tier=1, title=f"item {task_id}", status=TaskStatus.DISPATCHED, attempts=1,
        last_progress_at=LAST_PROGRESS, worker_host=this_host(),
        worker_pid=DEAD_WORKER[0], worker_pgid=DEAD_WORKER[0],
        worker_started_at=DEAD_WORKER[1], supervisor_pid=DEAD_SUPERVISOR[0],
        supervisor_started_at=DEAD_SUPERVISOR[1], last_error="git push hung",
    ), event_type=ev.TASK_CLAIMED, payload={"test": "planted"})
    ledger.append(ev.WORKTREE_HOOK_FAILED, task_id=task_id,
                  payload={"hook": "after_create", "output": "npm ERR! network timeout"})


def engine_for(repo_factory: Callable[..., repos.TestRepo], extra: str,
               **engine: object) -> Engine:
    repo = repo_factory(ITEMS, extra_toml=extra, engine=engine)
    return Engine(load_config(repo.config))


def gateway_toml(server: OpenAIServer | None, url: str | None = None) -> str:
    base = url or (server.api_base_url if server else "")
    return f'\n[inference.gateway]\ntype = "litellm"\nkwargs = {{ base_url = "{base}" }}\n'


def reap_rows(ledger: Ledger, after: int) -> list[tuple[str, str | None, float, str]]:
    return [tuple(row) for row in ledger.query(  # type: ignore[misc]
        "SELECT type, task_id, cost_usd, payload FROM events WHERE id > ? ORDER BY id",
        (after,))]


def last_id(ledger: Ledger) -> int:
    return int(ledger.query("SELECT coalesce(max(id), 0) FROM events")[0][0])


def test_the_reap_event_carries_the_models_triage_summary(
    repo_factory: Callable[..., repos.TestRepo],
) -> None:
    answer = Reply(Text("The after_create hook could not reach npm.\nCheck the proxy."),
                   usage=Usage(input_tokens=800, output_tokens=40))
    with OpenAIServer([answer]) as server:
        engine = engine_for(repo_factory, gateway_toml(server), triage=True)
        plant_stuck(engine.ledger, "T1-5")
        engine._reap(TickReport())
        prompt = server.turns[0].body["messages"][1]["content"]
    [reaped] = engine.ledger.events(types=[ev.ZOMBIE_REAPED])
    assert reaped.payload["triage_summary"] == ("The after_create hook could not reach npm. "
                                                "Check the proxy.")
    assert "npm ERR! network timeout" in prompt and "git push hung" in prompt
    assert prompt.startswith("<<<EVIDENCE ")
    [call] = engine.ledger.events(types=[ev.INFERENCE_CALL])
    assert (call.task_id, call.payload["role"]) == ("T1-5", "heartbeat-triage")
    assert call.payload["model"] == "claude-haiku-4-5"
    assert call.cost_usd > 0  # priced from the rate card, counted in the day's spend


def test_a_down_gateway_disables_triage_for_the_tick_with_one_event(
    repo_factory: Callable[..., repos.TestRepo],
) -> None:
    with OpenAIServer() as server:
        url = server.api_base_url  # stopped below: connection refused from now on
    engine = engine_for(repo_factory, gateway_toml(None, url), triage=True)
    plant_stuck(engine.ledger, "T1-5")
    plant_stuck(engine.ledger, "T1-6")
    report = TickReport()
    engine._reap(report)
    assert sorted(r.task_id for r in report.reaped) == ["T1-5", "T1-6"]
    [disabled] = engine.ledger.events(types=[ev.TRIAGE_DISABLED])
    assert disabled.payload["kind"] == "connection"
    assert len(engine.ledger.events(types=[ev.INFERENCE_FAILED])) == 1  # asked once, not twice
    for event in engine.ledger.events(types=[ev.ZOMBIE_REAPED]):
        assert "triage_summary" not in event.payload
    # The next tick tries again.
    engine._reap(TickReport())
    plant_stuck(engine.ledger, "T1-7")
    engine._reap(TickReport())
    assert len(engine.ledger.events(types=[ev.TRIAGE_DISABLED])) == 2


def test_with_triage_off_the_reaper_writes_byte_for_byte_what_it_wrote_before(
    repo_factory: Callable[..., repos.TestRepo], tmp_path: Path,
) -> None:
    with OpenAIServer([Text("must never be asked")]) as server:
        dumps = []
        for settings in ({}, {"triage": False}):
            engine = engine_for(repo_factory, gateway_toml(server), **settings)
            assert engine.config.policy.triage is False
            plant_stuck(engine.ledger, "T1-5")
            mark = last_id(engine.ledger)
            engine._reap(TickReport())
            dumps.append(reap_rows(engine.ledger, mark))
        # The reaper as it was: reap_zombies without a triage callable.
        baseline = Ledger(tmp_path / "baseline.db")
        plant_stuck(baseline, "T1-5")
        mark = last_id(baseline)
        reap_zombies(baseline, now=utcnow(), timeout_s=1800, host=this_host())
        dumps.append(reap_rows(baseline, mark))
        assert server.requests == ()
    assert dumps[0] == dumps[1] == dumps[2]
    assert [row[0] for row in dumps[0]] == [ev.ZOMBIE_REAPED]
    assert '"triage_summary"' not in dumps[0][0][3]


class HeldTriageModel(OpenAIServer):
    """Answers a triage call only once the test releases it (from the engine's event loop),
    or says it never was after 20 s."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = threading.Event()
        self.released = threading.Event()

    def respond(self, request: RecordedRequest, step: Step | None) -> Response:
        if request.path.rstrip("/") != "/v1/chat/completions":
            return super().respond(request, step)
        self.asked.set()
        answer = ("released by the engine's loop" if self.released.wait(timeout=20)
                  else "never released: the loop was blocked")
        return super().respond(request, Reply(Text(answer)))


def test_triage_runs_off_the_event_loop_while_the_loop_keeps_running(
    repo_factory: Callable[..., repos.TestRepo],
) -> None:
    # The model answers only when a coroutine on the tick's own event loop lets it: a triage
    # call made on the loop would hold the loop, and the coroutine with it, until it gave up.
    with HeldTriageModel() as server:
        engine = engine_for(repo_factory, gateway_toml(server), triage=True)
        engine.ledger.state_set(PAUSED_KEY, "now")  # reap, dispatch nothing
        plant_stuck(engine.ledger, "T1-5")

        async def tick_while_the_loop_runs() -> TickReport:
            async def on_the_loop() -> None:
                while not server.asked.is_set():
                    await asyncio.sleep(0.01)
                server.released.set()

            beside = asyncio.create_task(on_the_loop())
            report = await engine.tick()
            await beside
            return report

        report = asyncio.run(tick_while_the_loop_runs())
    assert [r.task_id for r in report.reaped] == ["T1-5"]
    [reaped] = engine.ledger.events(types=[ev.ZOMBIE_REAPED])
    assert reaped.payload["triage_summary"] == "released by the engine's loop"


def test_the_model_reads_the_tail_of_the_agents_transcript(
    repo_factory: Callable[..., repos.TestRepo],
) -> None:
    with OpenAIServer([Text("It waited on a lock.")]) as server:
        engine = engine_for(repo_factory, gateway_toml(server), triage=True)
        plant_stuck(engine.ledger, "T1-5")
        transcript = TranscriptWriter(transcript_path(engine.config.paths, "T1-5", 1))
        transcript.write(CanonicalEvent(CanonicalKind.ASSISTANT, {"text": "first thoughts"}))
        for n in range(40):
            transcript.write(CanonicalEvent(CanonicalKind.TOOL_USE, {"name": f"step-{n}"}))
        transcript.write(CanonicalEvent(CanonicalKind.ASSISTANT,
                                        {"text": "waiting for the lock on .git/index.lock"}))
        transcript.close()
        engine._reap(TickReport())
        prompt = server.turns[0].body["messages"][1]["content"]
    assert "the agent's transcript of attempt 1, last 30 events:" in prompt
    assert "[assistant] waiting for the lock on .git/index.lock" in prompt
    assert "[tool_use] step-39" in prompt and "first thoughts" not in prompt  # the tail only
