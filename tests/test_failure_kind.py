"""The failure kind an agent's adapter classified decides routing's fallback, and the ledger
keeps it with the result: a provider failure falls back to the next agent whatever its reason
says, and a failure of the agent's own does not, even worded like a provider's."""

from __future__ import annotations

import json
import sys

import pytest

from oxi_core.agentic.types import DispatchResult
from oxi_core.engine.engine import Engine
from oxi_core.engine.routes import provider_failure
from oxi_core.ledger import events as ev
from oxi_core.models import PROVIDER_FAILURES, Classification, FailureKind
from tests.conftest import load, roadmap, tick

# An exec agent that fails (exit 75, transient) and names the kind of its failure.
FAILING = [sys.executable, "-c",
           "import json, sys; print(json.dumps({'type': 'result', 'cost_usd': 0.01, "
           "'failure_kind': sys.argv[1]})); print(sys.argv[2], file=sys.stderr); sys.exit(75)"]
ROUTING = """version: 1
roles:
  worker:
    - name: flaky-first
      match: {tier: 1}
      adapter: flaky
      fallback: [worker]
    - name: default
      adapter: default
"""


def engine_for(repo_factory, kind: str, says: str) -> Engine:
    flaky = json.dumps([*FAILING, kind, says])
    repo = repo_factory(roadmap(("T1-5", "a note", "writes notes/T1-5.txt")), critic=False,
                        extra_toml=f'[agents.flaky]\ntype = "exec"\nkwargs = {{ argv = {flaky} }}'
                                   '\n[roles]\nworker = "worker"\n')
    repo.write("routing.yaml", ROUTING)
    return Engine(load(repo))


def test_a_provider_failure_falls_back_whatever_its_reason_says(repo_factory) -> None:
    engine = engine_for(repo_factory, "server_error", "the answer was not what we hoped")
    tick(engine)

    task = engine.ledger.task("T1-5")
    assert task is not None and task.status == "in_review" and task.agent == "worker"
    (fallback,) = engine.ledger.events(types=[ev.ROUTE_FALLBACK], task_id="T1-5")
    assert (fallback.payload["from"], fallback.payload["to"]) == ("flaky", "worker")
    assert fallback.payload["reason"] == "server_error"
    assert fallback.payload["result"]["failure_kind"] == "server_error"
    (result,) = engine.ledger.events(types=[ev.DISPATCH_RESULT], task_id="T1-5")
    assert result.payload["failure_kind"] is None  # the fallback agent succeeded


def test_an_agents_own_failure_worded_like_a_providers_does_not_fall_back(
    repo_factory,
) -> None:
    engine = engine_for(repo_factory, "agent_error", "model server error (HTTP 500): no really")
    tick(engine)

    assert engine.ledger.events(types=[ev.ROUTE_FALLBACK]) == []
    (result,) = engine.ledger.events(types=[ev.DISPATCH_RESULT], task_id="T1-5")
    assert result.payload["agent"] == "exec" and result.payload["failure_kind"] == "agent_error"
    assert result.payload["classification"] == "RETRYABLE_TRANSIENT"
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status == "retrying"  # later, on the same route


@pytest.mark.parametrize("kind", list(FailureKind))
def test_only_provider_kinds_are_provider_failures(kind: FailureKind) -> None:
    failed = DispatchResult(Classification.RETRYABLE_TRANSIENT, "model server error (HTTP 500)",
                            failure_kind=kind)
    assert provider_failure(failed) == (str(kind) if kind in PROVIDER_FAILURES else None)
    # No kind, no fallback: the reason's wording is never read.
    assert provider_failure(DispatchResult(Classification.FAILED,
                                           "model server error (HTTP 500)")) is None
