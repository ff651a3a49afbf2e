"""T2-43: the concurrency probe takes the CPU load into account, not only free memory."""

from __future__ import annotations

import json
import signal

import pytest

from oxi_core.engine.probe import (
    GIB,
    HostReadings,
    cpu_envelope,
    ram_envelope,
    read_host,
    recommend_concurrency,
)
from oxi_core.errors import OxiError
from oxi_core.ledger import events as ev
from oxi_core.models import Event
from tests.conftest import roadmap
from tests.unattended.support import events_of, run_oxi, wait_for

ROOMY_BUT_BUSY = HostReadings(available_ram_bytes=64 * GIB, cpu_count=8, load_avg_5min=6.5)


def test_a_busy_host_gets_fewer_workers_than_its_memory_would_allow() -> None:
    ram_only = ram_envelope(ROOMY_BUT_BUSY)
    assert ram_only == 41  # (64 GiB - 2 GiB reserve) / 1.5 GiB per worker
    recommendation = recommend_concurrency(ceiling=10, read=lambda: ROOMY_BUT_BUSY)
    assert recommendation.cpu_envelope == 1  # floor(8 - 6.5)
    assert recommendation.recommended == 1 < min(ram_only, 10)
    idle = HostReadings(available_ram_bytes=64 * GIB, cpu_count=8, load_avg_5min=0.4)
    assert recommend_concurrency(ceiling=10, read=lambda: idle).recommended == 7


@pytest.mark.parametrize(("readings", "ceiling", "plan", "expected"), [
    (HostReadings(4 * GIB, 16, 0.0), 10, "api", 1),  # memory-bound: 1 worker in 2 GiB
    (HostReadings(64 * GIB, 16, 40.0), 10, "api", 1),  # overloaded: never below one
    (HostReadings(64 * GIB, 16, 0.0), 10, "pro", 2),  # the plan's session limit
    (HostReadings(64 * GIB, 16, 0.0), 3, "max", 3),  # the operator's ceiling
])
def test_the_recommendation_is_the_smallest_envelope(
    readings: HostReadings, ceiling: int, plan: str, expected: int
) -> None:
    got = recommend_concurrency(ceiling=ceiling, plan_tier=plan, read=lambda: readings)
    assert got.recommended == expected
    assert cpu_envelope(readings) >= 1 and ram_envelope(readings) >= 1


def test_oxi_probe_json_prints_every_envelope(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "x", "y")), engine={"max_concurrent": 6})
    readings = {"available_ram_bytes": 64 * GIB, "cpu_count": 8, "load_avg_5min": 6.5}
    result = run_oxi(["probe", "--json"], cwd=repo.root,
                     env={"OXI_PROBE_READINGS": json.dumps(readings)})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == {"version": 1, "command": "probe",
                    "ram_envelope": 41, "cpu_envelope": 1, "plan_tier_envelope": None,
                    "ceiling": 6, "recommended": 1, "readings": readings}
    text = run_oxi(["v3", "probe"], cwd=repo.root,
                   env={"OXI_PROBE_READINGS": json.dumps(readings)})
    assert text.returncode == 0, text.stderr
    for label in ("ram envelope:", "cpu envelope:", "plan-tier envelope:", "ceiling:",
                  "recommended:        1"):
        assert label in text.stdout


def test_oxi_probe_reads_this_host_without_an_override(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "x", "y")))
    result = run_oxi(["probe", "--json", "--ceiling", "64"], cwd=repo.root,
                     env={"OXI_PROBE_READINGS": ""})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["readings"]["cpu_count"] >= 1
    assert 1 <= data["recommended"] <= min(data["ram_envelope"], data["cpu_envelope"], 64)


def test_an_invalid_override_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OXI_PROBE_READINGS", '{"cores": 4}')
    with pytest.raises(OxiError, match="OXI_PROBE_READINGS is not valid"):
        read_host()
    monkeypatch.setenv("OXI_PROBE_READINGS", '{"load_avg_5min": 3}')
    assert read_host().load_avg_5min == 3.0


def max_in_flight(events: list[Event]) -> int:
    """The most agents running at once, from worker_started and dispatch_result events."""
    running = peak = 0
    for event in events:
        if event.type == ev.WORKER_STARTED:
            running += 1
            peak = max(peak, running)
        elif event.type == ev.DISPATCH_RESULT:
            running -= 1
    return peak


@pytest.mark.parametrize(("cpus", "load", "expected_peak"), [(2, 1.5, 1), (8, 0.0, 3)],
                         ids=["busy-host", "idle-host"])
def test_saturate_never_runs_more_workers_than_the_probe_allows(
    repo_factory, oxi, cpus: int, load: float, expected_peak: int
) -> None:
    items = [(f"T1-{n}", f"note {n}", "its own notes file") for n in range(5, 8)]
    repo = repo_factory(roadmap(*items), agent_env={"AGENT_SLEEP": "0.6"})
    readings = {"available_ram_bytes": 64 * GIB, "cpu_count": cpus, "load_avg_5min": load}
    daemon = oxi.start(["saturate", "-j", "3", "--interval", "0.1"], repo,
                       env={"OXI_PROBE_READINGS": json.dumps(readings)})
    wait_for(lambda: len(events_of(repo, ev.DISPATCH_RESULT)) == 3, timeout=60,
             what="three results")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.stderr
    assert max_in_flight(events_of(repo)) == expected_peak
