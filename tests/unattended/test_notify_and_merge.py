"""T2-44 auto-merge enforcement with forges that misbehave, webhook notifications to a real
HTTP server, notifiers that fail, and a forge that is down (the reaper still runs)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import attrs
import pytest

from oxi_core.builtins.local_forge import LocalForge
from oxi_core.config import OxiConfig, load_config
from oxi_core.engine.engine import Engine
from oxi_core.engine.reaper import this_host
from oxi_core.errors import OxiError
from oxi_core.ledger import events as ev
from oxi_core.models import Event, PullRequest, PullRequestState, isoformat, utcnow
from oxi_core.plugins import load_plugins
from oxi_core.registry import Registration, Registry, build_registry
from oxi_core.tasks import Task, TaskStatus
from oxi_core.testing.model_server import LoopbackHTTPServer
from oxi_core.testing.repos import TestRepo as Repo
from tests.conftest import roadmap, tick

# -- forges that misbehave, registered in-process --------------------------------------------


@attrs.define
class StubbornForge(LocalForge):
    """Says yes to arming auto-merge and never arms (auto-merge disabled on the repository)."""

    arm_calls: int = attrs.field(default=0, init=False)

    def arm_auto_merge(self, number: int) -> bool:
        self.arm_calls += 1
        return True


@attrs.define
class FlakyForge(LocalForge):
    """Drops the first request to arm auto-merge; later ones work."""

    arm_calls: int = attrs.field(default=0, init=False)

    def arm_auto_merge(self, number: int) -> bool:
        self.arm_calls += 1
        if self.arm_calls == 1:
            return True
        return super().arm_auto_merge(number)


@attrs.define
class PendingChecksForge(LocalForge):
    """Arms auto-merge, but required checks never finish: armed PRs stay open."""

    arm_calls: int = attrs.field(default=0, init=False)

    def arm_auto_merge(self, number: int) -> bool:
        self.arm_calls += 1
        pr = self.get_pr(number)
        if pr.auto_merge_armed:
            return False
        self._set(number, auto_merge_armed=1)
        return True

    def merge_if_ready(self, number: int) -> PullRequest:
        return self.get_pr(number)


@attrs.define
class DownForge(LocalForge):
    """The forge is unreachable."""

    def list_open_prs(self) -> list[PullRequest]:
        raise OxiError("forge unreachable: connection refused")

    def get_pr(self, number: int) -> PullRequest:
        raise OxiError("forge unreachable: connection refused")


@attrs.define
class ExplodingNotifier:
    def notify(self, event: Event) -> None:
        raise RuntimeError(f"notifier down ({event.type})")


TEST_PLUGINS = {
    ("forges", "stubborn"): StubbornForge, ("forges", "flaky"): FlakyForge,
    ("forges", "pending"): PendingChecksForge, ("forges", "down"): DownForge,
    ("notifiers", "exploding"): ExplodingNotifier,
}


def registry_with_test_plugins() -> Registry:
    registry = build_registry(load_plugins())
    for (kind, name), cls in TEST_PLUGINS.items():
        registry.kinds[kind][name] = Registration(kind, name, cls, "tests", "tests")
    return registry


def configure(repo: Repo, *, forge: str = "local", notifiers: str = "") -> OxiConfig:
    text = repo.config.read_text().replace('[forges.local]\ntype = "local"',
                                           f'[forges.local]\ntype = "{forge}"')
    repo.config.write_text(text + notifiers)
    return load_config(repo.config, registry=registry_with_test_plugins())


# -- a real HTTP server for the webhook --------------------------------------------------------


class Hook:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.received.append({"body": json.loads(self.rfile.read(length)),
                                      "auth": self.headers.get("Authorization"),
                                      "type": self.headers.get("Content-Type")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oxi"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def types(self) -> list[str]:
        return [r["body"]["event"]["type"] for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def webhook_toml(url: str, name: str = "hook") -> str:
    return (f'\n[notifiers.{name}]\ntype = "webhook"\n'
            f'kwargs = {{ url = "{url}", timeout_s = 5, headers = '
            f'{{ Authorization = {{ env = "OXI_TEST_HOOK_TOKEN" }} }} }}\n')


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody-listens"


def plant_zombie(engine: Engine, task_id: str) -> None:
    """A dispatched task whose worker and supervisor are both long gone."""
    engine.ledger.insert_task(
        Task(id=task_id, tier=1, title="crashed", status=TaskStatus.DISPATCHED, attempts=1,
             worker_host=this_host(), worker_pid=2**22 - 3, worker_pgid=2**22 - 3,
             worker_started_at=1.0, supervisor_pid=2**22 - 5, supervisor_started_at=1.0,
             last_progress_at=isoformat(utcnow() - timedelta(hours=2))),
        event_type=ev.TASK_CLAIMED, payload={"planted": True})


# -- auto-merge enforcement ---------------------------------------------------------------------


def test_auto_merge_that_will_not_arm_is_rearmed_each_tick_and_notified_once(
    repo_factory, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXI_TEST_HOOK_TOKEN", "Bearer s3cret")
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    config = configure(repo, forge="stubborn", notifiers=webhook_toml(hook.url))
    engine = Engine(config)
    tick(engine)  # the critic approves; arming "works" but the forge reports it unarmed
    forge = config.forge
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW and task.pr_number
    # The worker armed it; observing right after (as the next tick would) found it unarmed.
    assert forge.arm_calls == 2
    for _ in range(3):
        calls = forge.arm_calls
        tick(engine)
        assert forge.arm_calls > calls  # every tick tries again
    not_armed = engine.ledger.events(types=[ev.AUTO_MERGE_NOT_ARMED])
    assert len(not_armed) == 1 and not_armed[0].payload["pr"] == task.pr_number
    assert hook.types() == [ev.AUTO_MERGE_NOT_ARMED]  # notified once, not every tick
    (request,) = hook.received
    assert request["auth"] == "Bearer s3cret"
    assert request["type"] == "application/json"
    assert request["body"]["event"]["task_id"] == "T1-5"
    assert forge.get_pr(task.pr_number).state is PullRequestState.OPEN


def test_a_dropped_arm_request_is_rearmed_on_the_next_tick(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    config = configure(repo, forge="flaky")
    engine = Engine(config)
    # The worker's request is dropped; the observation after the run (what the next tick of
    # saturate does) sees the PR unarmed, arms it again, and the forge merges it.
    report = tick(engine)
    assert report.merged == ["T1-5"]
    assert config.forge.arm_calls == 2
    armed = engine.ledger.events(types=[ev.AUTO_MERGE_ARMED])
    assert [e.payload.get("rearmed", False) for e in armed] == [False, True]
    assert engine.ledger.events(types=[ev.AUTO_MERGE_NOT_ARMED]) == []
    assert repo.origin_file("notes/T1-5.txt") == "T1-5 was here\n"


def test_an_armed_pr_is_left_alone(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    config = configure(repo, forge="pending")
    engine = Engine(config)
    tick(engine)
    assert config.forge.arm_calls == 1
    before = engine.ledger.count_events()
    for _ in range(3):
        tick(engine)
    assert config.forge.arm_calls == 1  # already armed: nothing to do, nothing recorded
    assert engine.ledger.count_events() == before
    (armed,) = engine.ledger.events(types=[ev.AUTO_MERGE_ARMED])
    assert armed.payload["already_armed"] is False
    # Arming again is idempotent: the forge answers "already armed" and no state changes.
    task = engine.ledger.task("T1-5")
    assert task is not None and task.pr_number is not None
    assert config.forge.arm_auto_merge(task.pr_number) is False


# -- notifications -------------------------------------------------------------------------------


def test_the_webhook_hears_of_failures_zombies_and_the_daily_budget(
    repo_factory, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXI_TEST_HOOK_TOKEN", "Bearer s3cret")
    repo = repo_factory(roadmap(("T1-4", "does nothing", "n"), ("T1-8", "crashed", "n")))
    engine = Engine(configure(repo, notifiers=webhook_toml(hook.url)))
    plant_zombie(engine, "T1-8")
    engine.config.policy = attrs.evolve(engine.config.policy, max_concurrent=1)
    tick(engine)  # reaps T1-8; T1-4 runs first and changes nothing: FAILED
    assert hook.types() == [ev.ZOMBIE_REAPED, ev.TASK_FAILED]
    zombie, failed = (r["body"]["event"] for r in hook.received)
    assert zombie["task_id"] == "T1-8" and zombie["payload"]["reason"] == "zombie"
    assert failed["task_id"] == "T1-4" and failed["payload"]["reason"].startswith("no changes")

    engine.config.policy = attrs.evolve(engine.config.policy, budget_per_day_usd=0.0)
    report = tick(engine)  # T1-8 is planned again, and today's budget is spent
    assert report.budget_reached and report.dispatched == []
    tick(engine)
    assert hook.types()[2:] == [ev.DAILY_BUDGET_REACHED]  # once a day, however many ticks
    budget = hook.received[2]["body"]["event"]
    assert budget["payload"]["budget_usd"] == 0.0
    # Every notification is also an event; the secret header never reached the ledger.
    assert "s3cret" not in json.dumps([e.payload for e in engine.ledger.events()])


def test_a_failing_notifier_is_an_event_and_never_stops_the_engine(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-4", "does nothing", "n"), ("T1-5", "works", "n"),
                                ("T1-8", "crashed", "n")), engine={"max_concurrent": 2})
    extra = webhook_toml(closed_port_url(), "refused") + '\n[notifiers.bomb]\ntype = "exploding"\n'
    engine = Engine(configure(repo, notifiers=extra.replace(
        ', headers = { Authorization = { env = "OXI_TEST_HOOK_TOKEN" } }', "")))
    plant_zombie(engine, "T1-8")
    tick(engine)
    tasks = {t.id: t.status for t in engine.ledger.tasks()}
    assert tasks["T1-4"] is TaskStatus.FAILED and tasks["T1-5"] is TaskStatus.MERGED
    failures = engine.ledger.events(types=[ev.NOTIFY_FAILED])
    by = sorted((e.payload["notifier"], e.task_id) for e in failures)
    assert by == [("bomb", "T1-4"), ("bomb", "T1-8"), ("refused", "T1-4"), ("refused", "T1-8")]
    errors = {e.payload["notifier"]: e.payload["error"] for e in failures}
    assert errors["bomb"].startswith("RuntimeError: notifier down")
    assert "ConnectError" in errors["refused"]
    notified = {e.id: e.type for e in engine.ledger.events(
        types=[ev.ZOMBIE_REAPED, ev.TASK_FAILED])}
    assert {notified[e.payload["event_id"]] for e in failures} == {ev.ZOMBIE_REAPED,
                                                                   ev.TASK_FAILED}


# -- a forge that is down ------------------------------------------------------------------------


def test_a_forge_that_is_down_fails_its_phase_but_the_reaper_still_runs(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "edits the shared file", "`shared.txt`"),
                                ("T1-8", "crashed", "n")), engine={"max_concurrent": 2})
    engine = Engine(configure(repo, forge="down"))
    plant_zombie(engine, "T1-8")
    report = asyncio.run(engine.tick())
    assert [r.task_id for r in report.reaped] == ["T1-8"]
    assert [p for p, _ in report.failed_phases] == ["observe"]
    (failed,) = engine.ledger.events(types=[ev.PHASE_FAILED])
    assert failed.payload["phase"] == "observe"
    assert "forge unreachable" in failed.payload["error"]
    # Blind to the open PRs, the engine does not dispatch (the overlap gate cannot decide).
    assert report.dispatched == []
    assert engine.ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-5") == []
    # Back up: the next tick dispatches.
    engine.config.instances["forges"]["local"] = _local_forge_like(engine)
    report = asyncio.run(engine.run_once())
    assert report.failed_phases == []
    assert sorted(report.dispatched) == ["T1-5", "T1-8"]


def _local_forge_like(engine: Engine) -> LocalForge:
    forge = LocalForge()
    forge.bind(engine.config.context)
    return forge
