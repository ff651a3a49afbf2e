"""The contract every agent adapter with a real binary meets (T2-30).

Each registered agent type that drives a real CLI is run, through its registered class built
from oxi.toml-style kwargs, as the engine runs it (``await adapter.invoke(DispatchRequest)``),
with its REAL pinned binary against a scripted model server on 127.0.0.1. The per-adapter
:data:`DRIVERS` table knows how to point each one at its server; a new adapter plugin adds a
row (a test fails until it does).

After every scenario no process of the agent's process group may be left, and ``on_spawn``
must have been called once and ``on_event`` for the stream's events.

Pinned outcomes and why:
- the server dying mid-stream is RETRYABLE_TRANSIENT: the agent did nothing wrong, the model
  endpoint went away, and the same task against a healthy endpoint can succeed. (Claude Code
  retries once without streaming and then reports "Unable to connect" with no HTTP status;
  Codex reports "stream disconnected before completion".)
- a line over 1 MB is FAILED: the model produced something no retry will make smaller, and the
  runner must not buffer it (it stops reading at the limit and kills the group).
- max turns: Claude Code has ``--max-turns``; Codex has no turn limit at all, so the Codex
  adapter counts model turns itself and stops the group once the limit is used up. Both are
  held to the same outcome: FAILED, "max turns".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psutil
import pytest

from oxi_core.agentic.rates import cost_usd
from oxi_core.agentic.types import (
    CanonicalEvent,
    CanonicalKind,
    CostSource,
    DispatchRequest,
    DispatchResult,
    Usage,
)
from oxi_core.config import make_converter, structure_kwargs
from oxi_core.models import Classification, FailureKind
from oxi_core.registry import get_registry
from oxi_core.testing.agent_clis import (
    CLAUDE_CODE_VERSION,
    CODEX_VERSION,
    claude_binary,
    codex_binary,
)
from oxi_core.testing.anthropic_server import AnthropicServer
from oxi_core.testing.model_server import (
    ErrorReply,
    Reasoning,
    Reply,
    Script,
    ScriptedModelServer,
    Stall,
    StepLike,
    Text,
    ToolCall,
)
from oxi_core.testing.model_server import Usage as ScriptedUsage
from oxi_core.testing.openai_server import OpenAIServer

pytestmark = pytest.mark.real_cli

# Agent types that run no binary of their own (the built-in `exec` runs whatever argv it is
# given, and has its own tests): everything else registered needs a driver below.
NO_BINARY = frozenset({"exec"})
CLI_TIMEOUT_S = 60.0


@attrs.frozen
class Driver:
    """How to point one adapter type at its scripted server, and what it reports back."""

    binary: Callable[[], Path | None]
    version: str
    server: Callable[[Script], ScriptedModelServer]
    kwargs: Callable[[ScriptedModelServer, Path, str], dict[str, Any]]
    # the scripted usage of the text-reply scenario, and what the adapter must report for it
    scripted_usage: ScriptedUsage
    expected_usage: Usage
    tool_of_write: str  # the canonical tool a scripted ToolCall.write becomes


DRIVERS: dict[str, Driver] = {
    "claude": Driver(
        binary=claude_binary,
        version=CLAUDE_CODE_VERSION,
        server=lambda script: AnthropicServer(script),
        kwargs=lambda server, tmp, binary: {
            "binary": binary,
            "base_url": server.base_url,
            "api_key": "oxi-scripted-key",
            "home": str(tmp / "home"),
        },
        scripted_usage=ScriptedUsage(
            input_tokens=123, output_tokens=45, cached_tokens=6, cache_creation_tokens=7
        ),
        # Anthropic's input excludes the cache; oxi's input counts reads and writes in it
        expected_usage=Usage(input_tokens=136, output_tokens=45, cached_tokens=13),
        tool_of_write="write",
    ),
    "codex": Driver(
        binary=codex_binary,
        version=CODEX_VERSION,
        server=lambda script: OpenAIServer(script),
        kwargs=lambda server, tmp, binary: {
            "binary": binary,
            "provider": "scripted",
            "base_url": server.api_base_url,
            "api_key": "oxi-scripted-key",
            "codex_home": str(tmp / "codex-home"),
            "home": str(tmp / "home"),
            "pinned_version": CODEX_VERSION,
        },
        scripted_usage=ScriptedUsage(
            input_tokens=120, output_tokens=30, cached_tokens=20, reasoning_tokens=7
        ),
        # OpenAI's output includes reasoning; oxi keeps the reasoning tokens apart
        expected_usage=Usage(
            input_tokens=120, output_tokens=23, cached_tokens=20, reasoning_tokens=7
        ),
        tool_of_write="edit",
    ),
}


def registered_with_binaries() -> list[str]:
    return [name for name in get_registry().names("agents") if name not in NO_BINARY]


ADAPTERS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            DRIVERS[name].binary() is None,
            reason=f"{name} {DRIVERS[name].version} not installed: run scripts/install-agent-clis",
        ),
    )
    for name in registered_with_binaries()
    if name in DRIVERS
]


def test_every_registered_adapter_with_a_binary_has_a_contract_driver() -> None:
    names = registered_with_binaries()
    assert {"claude", "codex"} <= set(names)
    assert not set(names) - set(DRIVERS), "add a Driver for it to tests/test_agentic_contract.py"


# -- the harness ------------------------------------------------------------------------------


@attrs.define
class Dispatch:
    result: DispatchResult
    events: list[CanonicalEvent]
    spawns: list[tuple[int, int]]
    elapsed_s: float

    def of(self, kind: CanonicalKind, **match: Any) -> list[CanonicalEvent]:
        return [
            e
            for e in self.events
            if e.kind is kind and all(e.data.get(k) == v for k, v in match.items())
        ]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


@attrs.define
class Contract:
    name: str
    driver: Driver
    tmp: Path
    repo: Path
    groups: list[int] = attrs.field(factory=list)

    def adapter(self, server: ScriptedModelServer, binary: str | None = None) -> Any:
        registration = get_registry().get("agents", self.name)
        assert registration is not None
        found = self.driver.binary()
        assert found is not None
        kwargs = self.driver.kwargs(server, self.tmp, binary or str(found))
        return structure_kwargs(
            registration.cls,
            kwargs,
            converter=make_converter(self.tmp),
            file=None,
            table=f"agents.{self.name}",
        )

    def dispatch(
        self,
        server: ScriptedModelServer,
        *,
        binary: str | None = None,
        cancel: asyncio.Event | None = None,
        **request: Any,
    ) -> Dispatch:
        adapter = self.adapter(server, binary)
        events: list[CanonicalEvent] = []
        spawns: list[tuple[int, int]] = []
        request.setdefault("timeout_s", CLI_TIMEOUT_S)
        request.setdefault("stall_timeout_s", 30.0)

        async def go() -> DispatchResult:
            result: DispatchResult = await adapter.invoke(
                DispatchRequest(
                    task_id="T2-30",
                    prompt="do the task",
                    worktree=self.repo,
                    on_event=events.append,
                    on_spawn=lambda pid, pgid: spawns.append((pid, pgid)),
                    cancel=cancel,
                    **request,
                )
            )
            return result

        started = time.monotonic()
        result = asyncio.run(go())
        elapsed = time.monotonic() - started
        assert len(spawns) == 1, "on_spawn is called once"
        pid, pgid = spawns[0]
        assert pid == pgid, "the agent leads its own process group"
        self.groups.append(pgid)
        assert group_members(pgid) == [], "a process of the agent outlived its run"
        assert events, "on_event moves the heartbeat"
        assert all(isinstance(e.kind, CanonicalKind) for e in events)
        assert result.agent == self.name
        assert result.duration_s > 0
        return Dispatch(result, events, spawns, elapsed)

    def run(self, *script: StepLike, **request: Any) -> Dispatch:
        with self.driver.server(Script(list(script))) as server:
            return self.dispatch(server, **request)


@pytest.fixture(params=ADAPTERS)
def contract(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Contract]:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (tmp_path / "home").mkdir()
    harness = Contract(request.param, DRIVERS[request.param], tmp_path, repo)
    yield harness
    for pgid in harness.groups:  # nothing may linger after the test either
        assert group_members(pgid) == []


# -- scenarios --------------------------------------------------------------------------------


def test_a_text_reply_succeeds_with_the_scripted_tokens_and_their_cost(
    contract: Contract,
) -> None:
    driver = contract.driver
    done = contract.run(
        Reply(
            [Reasoning("thinking it over"), Text("hi from the script")], usage=driver.scripted_usage
        )
    )
    result = done.result
    assert result.classification is Classification.SUCCESS, result.reason
    assert result.final_text == "hi from the script"
    assert result.usage == driver.expected_usage
    assert result.session_id
    assert result.turns == 1
    assert result.exit_code == 0
    assert result.cost_usd > 0
    if contract.name == "claude":
        # Claude Code's own figure, for a first-party model: the result line says the same
        [line] = done.of(CanonicalKind.RESULT)
        assert (result.cost_source, result.cost_usd) == (
            CostSource.PROVIDER,
            line.data["total_cost_usd"],
        )
    else:
        assert result.cost_source is CostSource.RATE_CARD
        assert result.cost_usd == cost_usd(result.model, driver.expected_usage)
    assert done.of(CanonicalKind.ASSISTANT, text="hi from the script")
    assert result.result_event()["input_tokens"] == driver.expected_usage.input_tokens


def test_a_tool_call_writes_the_file(contract: Contract) -> None:
    done = contract.run(ToolCall.write("hello.txt", "hi\n"), Text("all done"))
    assert done.result.classification is Classification.SUCCESS, done.result.reason
    assert (contract.repo / "hello.txt").read_text() == "hi\n"
    assert done.of(CanonicalKind.TOOL_USE, tool=contract.driver.tool_of_write)
    assert done.of(CanonicalKind.TOOL_RESULT)
    assert done.result.turns == 2
    assert done.result.final_text == "all done"


def test_a_resumed_session_continues_and_reports_only_its_own_tokens(
    contract: Contract,
) -> None:
    script = Script(
        [
            Reply(Text("first"), usage=ScriptedUsage(input_tokens=100, output_tokens=20)),
            Reply(Text("second"), usage=ScriptedUsage(input_tokens=50, output_tokens=5)),
        ]
    )
    with contract.driver.server(script) as server:
        first = contract.dispatch(server).result
        second = contract.dispatch(server, resume_session_id=first.session_id).result
        resumed = server.turns[-1].body
    assert (first.ok, second.ok) == (True, True), (first.reason, second.reason)
    assert second.session_id == first.session_id
    assert second.final_text == "second"
    assert "first" in json.dumps(resumed)  # the earlier answer is in the resumed conversation
    assert (second.usage.input_tokens, second.usage.total) == (50, 55)
    assert second.cost_usd < first.cost_usd


def test_401_is_a_credentials_setup_error_naming_the_key(contract: Contract) -> None:
    # Every task would be refused the same way: the engine pauses rather than fail them all.
    result = contract.run(ErrorReply.unauthorized()).result
    assert result.classification is Classification.SETUP_ERROR
    assert "credentials" in result.reason and "kwargs.api_key" in result.reason
    assert result.rate_limit_exhausted is False
    assert result.failure_kind is FailureKind.CREDENTIALS  # routing may fall back on it


def test_529_overloaded_is_transient(contract: Contract) -> None:
    result = contract.run(ErrorReply.overloaded()).result
    assert result.classification is Classification.RETRYABLE_TRANSIENT
    assert "529" in result.reason
    assert result.failure_kind is FailureKind.OVERLOADED


def test_max_turns_stops_the_run_as_a_failure(contract: Contract) -> None:
    done = contract.run(
        ToolCall.write("first.txt", "1\n"),
        ToolCall.write("second.txt", "2\n"),
        Text("done"),
        max_turns=1,
    )
    assert done.result.classification is Classification.FAILED
    assert "max turns" in done.result.reason
    assert not (contract.repo / "second.txt").exists()


def test_the_server_dying_mid_stream_is_transient(contract: Contract) -> None:
    server = contract.driver.server(Script([Stall(Text("partial answer"), after_events=3)]))
    server.start()

    def kill_server() -> None:
        try:
            server.wait_for_requests(where=lambda r: r.is_turn, timeout=CLI_TIMEOUT_S)
            time.sleep(0.3)  # the first events are out: now the stream breaks
        finally:
            server.stop()

    killer = threading.Thread(target=kill_server)
    killer.start()
    try:
        result = contract.dispatch(server).result
    finally:
        killer.join()
        server.stop()
    assert result.classification is Classification.RETRYABLE_TRANSIENT, result.reason
    assert result.exit_code not in (0, None)


def test_a_line_over_one_megabyte_fails_the_run(contract: Contract) -> None:
    # The CLI echoes the answer on one JSON line, and claude exits right after printing it:
    # what its stdout pipe had not taken is lost (Node's process.exit). With a 64 KB pipe a
    # loaded host saw less than 1 MB of 4 (4 runs in 6 failed, with 3 tries each); the
    # runner's stdout pipe holds the whole line limit, so oxi reads past it every time.
    done = contract.run(Text("x" * (4 * 1024 * 1024)))
    assert done.result.classification is Classification.FAILED, done.result.reason
    assert "over 1 MB" in done.result.reason
    assert done.result.failure_kind is FailureKind.AGENT_ERROR
    assert len(done.result.final_text) < 1024 * 1024


def test_a_non_json_line_is_skipped_and_reported(contract: Contract) -> None:
    found = contract.driver.binary()
    assert found is not None
    wrapper = contract.tmp / f"noisy-{contract.name}"
    wrapper.write_text(f'#!/bin/sh\necho "npm WARN this is not JSON"\nexec "{found}" "$@"\n')
    wrapper.chmod(0o755)
    done = contract.run(Text("fine anyway"), binary=str(wrapper))
    assert done.result.classification is Classification.SUCCESS, done.result.reason
    assert done.result.final_text == "fine anyway"
    [noise] = done.of(CanonicalKind.SYSTEM, subtype="non_json_line")
    assert noise.data["line"] == "npm WARN this is not JSON"


def test_a_stalled_stream_is_transient_within_the_idle_timeout(contract: Contract) -> None:
    stall_s = 2.0
    with contract.driver.server(Script([Stall(Text("half an answer"), after_events=2)])) as server:
        done = contract.dispatch(server, stall_timeout_s=stall_s)
        turn_at = server.turns[0].received_at
    result = done.result
    assert result.classification is Classification.RETRYABLE_TRANSIENT
    assert "stalled" in result.reason
    assert result.failure_kind is FailureKind.STALLED
    # the verdict comes one idle timeout after the stream went quiet, plus the kill grace
    assert time.time() - turn_at < stall_s + 6
    assert done.elapsed_s < stall_s + 12


def wrapped(contract: Contract, name: str, before: str, after: str) -> str:
    """The real CLI run between two shell snippets (``--version`` and codex's sandbox
    self-test pass straight through)."""
    found = contract.driver.binary()
    assert found is not None
    wrapper = contract.tmp / f"{name}-{contract.name}"
    wrapper.write_text(
        f'#!/bin/sh\ncase "$1" in --version|sandbox) exec "{found}" "$@";; esac\n'
        f'{before}\n"{found}" "$@"\nstatus=$?\n{after}\nexit $status\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def test_a_complete_result_then_silence_is_a_success_not_a_stall(contract: Contract) -> None:
    # The CLI printed its whole, successful result and then hung (open handles, a child it
    # waits on): the stall timeout kills it, but the work is done and paid for.
    lingering = wrapped(contract, "lingering", "", "exec sleep 120")
    done = contract.run(Text("all done"), binary=lingering, stall_timeout_s=2.0)
    assert done.result.classification is Classification.SUCCESS, done.result.reason
    assert done.result.final_text == "all done"
    assert done.result.usage.total > 0 and done.result.cost_usd > 0
    assert done.elapsed_s < 2.0 + 20


def test_a_slow_start_is_not_a_stall(contract: Contract) -> None:
    # Six CLIs starting at once on two CPUs can each be silent for longer than the stall
    # timeout before their first request: start-up has its own allowance.
    slow_start = wrapped(contract, "slow-start", "sleep 4", "")
    done = contract.run(Text("started late"), binary=slow_start, stall_timeout_s=1.5)
    assert done.result.classification is Classification.SUCCESS, done.result.reason
    assert done.result.final_text == "started late"
    assert done.elapsed_s > 4


def test_a_slow_but_steady_stream_is_not_killed(contract: Contract) -> None:
    # The stall timeout must exceed the CLI's own start-up silence: claude 2.1.197 prints its
    # first line 1.5-1.8 s after spawn on a slow day here (1.5 s made this test flaky).
    stall_s = 4.0
    answer = "slow and steady wins " * 6
    reply = Reply(Text(answer), chunk_delay=0.45, delta_size=6)  # ~21 events, ~9.5 s in all
    done = contract.run(reply, stall_timeout_s=stall_s)
    assert done.result.classification is Classification.SUCCESS, done.result.reason
    assert done.result.final_text == answer
    assert done.elapsed_s > 2 * stall_s


def test_the_engines_cancel_event_stops_the_agent(contract: Contract) -> None:
    cancel = asyncio.Event()
    with contract.driver.server(Script([Stall(Text("working"), after_events=2)])) as server:

        async def cancel_on_turn() -> None:
            while not server.turns:
                await asyncio.sleep(0.05)
            cancel.set()

        adapter = contract.adapter(server)
        spawns: list[tuple[int, int]] = []

        async def go() -> DispatchResult:
            watcher = asyncio.ensure_future(cancel_on_turn())
            try:
                result: DispatchResult = await adapter.invoke(
                    DispatchRequest(
                        task_id="T2-30",
                        prompt="do the task",
                        worktree=contract.repo,
                        on_spawn=lambda pid, pgid: spawns.append((pid, pgid)),
                        cancel=cancel,
                        timeout_s=CLI_TIMEOUT_S,
                        stall_timeout_s=30.0,
                    )
                )
                return result
            finally:
                watcher.cancel()

        started = time.monotonic()
        result = asyncio.run(go())
    assert result.classification is Classification.FAILED
    assert result.reason == "cancelled"
    assert time.monotonic() - started < 15
    [(_, pgid)] = spawns
    assert group_members(pgid) == []
