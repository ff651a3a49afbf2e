"""Notifications as documented: `oxi pause` and held tasks reach the notifiers, a gate may
refuse a task for good (`skip`), and routine progress stays in the ledger. Real processes: an
installed gate plugin, the built-in webhook notifier, a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from oxi_core.ledger import events as ev
from oxi_core.testing.model_server import LoopbackHTTPServer
from tests.conftest import roadmap
from tests.unattended.support import events_of, run_oxi, wait_for

GATE_PLUGIN = '''
import attrs

from oxi_core.hookspecs import hookimpl
from oxi_core.models import GateDecision


@attrs.define
class WordsGate:
    """Holds items whose title says "hold"; refuses for good those that say "danger"."""

    def check(self, task, state):
        if "danger" in task.title:
            return GateDecision.skip("the title says danger: never dispatched here")
        if "hold" in task.title:
            return GateDecision.hold("the title asks for a hold", asked_by="title")
        return GateDecision.allow()


@hookimpl
def register_gates(register):
    register("words", WordsGate)
'''


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every event it is sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body)["event"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


def installed_gate(site: Path) -> dict[str, str]:
    """The gate plugin laid out as an installed distribution on PYTHONPATH."""
    (site / "oxi_words").mkdir(parents=True)
    (site / "oxi_words" / "__init__.py").write_text("")
    (site / "oxi_words" / "plugin.py").write_text(textwrap.dedent(GATE_PLUGIN))
    dist = site / "oxi_words-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: oxi-words\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[oxi]\nwords = oxi_words.plugin\n")
    return {"PYTHONPATH": str(site)}


def test_pause_holds_and_skips_reach_the_notifiers_and_routine_progress_does_not(
    repo_factory, receiver: Receiver, tmp_path: Path
) -> None:
    repo = repo_factory(
        roadmap(("T1-5", "plain work", "a"), ("T1-6", "danger zone", "b"),
                ("T1-7", "please hold", "c")),
        engine={"max_concurrent": 3},
        extra_toml=(f'\n[gates.words]\ntype = "words"\n\n[notifiers.ops]\ntype = "webhook"\n'
                    f'kwargs = {{ url = "{receiver.url}" }}\n'))
    env = installed_gate(tmp_path / "site")

    paused = run_oxi(["pause", "--reason", "deploying"], cwd=repo.root, env=env)
    assert paused.returncode == 0, paused.stderr
    assert receiver.types() == ["engine_paused"]
    assert receiver.events[0]["payload"]["reason"] == "deploying"
    assert receiver.events[0]["payload"]["by"] == "operator"
    resumed = run_oxi(["resume", "--json"], cwd=repo.root, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["notified"] == "ok"
    assert receiver.types() == ["engine_paused", "engine_resumed"]
    assert receiver.events[1]["payload"]["by"] == "operator"

    ticked = run_oxi(["tick"], cwd=repo.root, env=env)

    assert ticked.returncode == 0, ticked.stderr
    assert ticked.stdout.splitlines()[0] == (
        "oxi tick: dispatched T1-5, merged T1-5, held T1-7, skipped T1-6")
    assert "  T1-6 skipped: the title says danger: never dispatched here" in ticked.stdout
    wait_for(lambda: len(receiver.events) >= 4, what="the notifications")
    assert receiver.types() == ["engine_paused", "engine_resumed", "task_skipped", "task_held"]
    skipped, held = receiver.events[2:]
    assert (skipped["task_id"], skipped["payload"]["gate"]) == ("T1-6", "words")
    assert (held["task_id"], held["payload"]["asked_by"]) == ("T1-7", "title")
    status = json.loads(run_oxi(["status", "--json"], cwd=repo.root, env=env).stdout)
    assert status["counts"] == {"held": 1, "merged": 1, "skipped": 1}

    # Skipped is for good: more ticks leave it alone, and say nothing more.
    assert run_oxi(["tick"], cwd=repo.root, env=env).returncode == 0
    assert len(events_of(repo, ev.TASK_SKIPPED)) == 1 and len(receiver.events) == 4
    # Until an operator plans it again.
    retried = run_oxi(["task", "retry", "T1-6"], cwd=repo.root, env=env)
    assert retried.returncode == 0, retried.stderr
    listed = json.loads(run_oxi(["task", "list", "--json"], cwd=repo.root, env=env).stdout)
    assert {row["id"]: row["status"] for row in listed["tasks"]}["T1-6"] == "planned"
