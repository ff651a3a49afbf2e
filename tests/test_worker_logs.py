"""Log lines from a worker carry its task id, and its agent's session id once known."""

from __future__ import annotations

import io
import json

import structlog

from oxi_core import log
from oxi_core.engine.engine import Engine
from tests.conftest import load, roadmap, tick


def test_worker_log_lines_carry_task_and_session_ids(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "notes", "n")), critic=False,
                        agent_env={"AGENT_SESSION": "sess-123"})
    stream = io.StringIO()
    log.configure(stream=stream, json_lines=True)
    try:
        tick(Engine(load(repo)))
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (result,) = [line for line in lines if line["event"] == "dispatch_result"]
    assert result["task_id"] == "T1-5"
    assert result["session_id"] == "sess-123"
    assert result["classification"] == "SUCCESS"
