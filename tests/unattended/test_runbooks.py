"""The systemd unit and the launchd plist in docs/runbooks/: what they say, and that the
command they run starts and stops saturate as they expect."""

from __future__ import annotations

import configparser
import plistlib
import re
import shlex
import signal
from pathlib import Path

import pytest

from oxi_core.ledger import events as ev
from oxi_core.policy import Policy
from tests.conftest import roadmap
from tests.unattended.support import events_of, wait_for

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
# The agent timeout plus room to push, review and merge.
STOP_BUDGET_S = Policy().agent_timeout_s + 600


def service() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(RUNBOOKS / "oxi-saturate.service")
    return parser


def seconds(value: str) -> float:
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*([a-z]*)", value):
        total += int(number) * units[unit or "s"]
    return total


def plist() -> dict[str, object]:
    with open(RUNBOOKS / "dev.oxi.saturate.plist", "rb") as handle:
        data: dict[str, object] = plistlib.load(handle)
    return data


def test_the_systemd_unit_calls_saturate_directly_and_lets_workers_finish() -> None:
    unit = service()["Service"]
    argv = shlex.split(unit["ExecStart"])
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "oxi"
    assert argv[1:3] == ["v3", "saturate"]
    assert unit["KillMode"] == "mixed"
    assert unit["Delegate"] == "yes"  # each run gets a cgroup of its own (T0-106)
    assert unit["KillSignal"] == "SIGTERM"
    assert seconds(unit["TimeoutStopSec"]) >= STOP_BUDGET_S
    assert unit["Restart"] == "on-failure"
    assert unit["RestartPreventExitStatus"] == "2"
    assert unit["Type"] == "simple"
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(RUNBOOKS / "oxi-saturate.timer")
    assert timer["Timer"]["OnCalendar"].endswith("UTC")


def test_the_launchd_plist_calls_saturate_directly_and_lets_workers_finish() -> None:
    data = plist()
    argv = data["ProgramArguments"]
    assert isinstance(argv, list)
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "oxi"
    assert argv[1:3] == ["v3", "saturate"]
    assert data["Label"] == "dev.oxi.saturate"
    assert isinstance(data["ExitTimeOut"], int) and data["ExitTimeOut"] >= STOP_BUDGET_S
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["StartCalendarInterval"]


def test_the_runbook_index_names_every_file() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for path in RUNBOOKS.iterdir():
        if path.name != "README.md":
            assert f"]({path.name})" in index, path.name


@pytest.mark.parametrize("source", ["systemd", "launchd"])
def test_the_command_they_run_starts_and_stops_cleanly(repo_factory, oxi, source: str) -> None:
    if source == "systemd":
        argv = shlex.split(service()["Service"]["ExecStart"])
    else:
        argv = list(plist()["ProgramArguments"])  # type: ignore[call-overload]
    repo = repo_factory(roadmap(("T1-5", "note", "n")), agent_env={"AGENT_SLEEP": "1"})
    daemon = oxi.start(argv[1:], repo)  # `python -m oxi_core` stands in for the binary
    (started,) = wait_for(lambda: events_of(repo, ev.SATURATE_STARTED), what="saturate")
    assert started.payload["concurrency"] == int(argv[argv.index("--concurrency") + 1])
    assert started.payload["max_cost_per_day"] == float(argv[argv.index("--max-cost-per-day")
                                                             + 1])
    wait_for(lambda: events_of(repo, ev.WORKER_STARTED), what="an agent")
    daemon.signal(signal.SIGTERM)  # what `systemctl stop` / `launchctl kill` send
    assert daemon.wait(timeout=60) == 0, daemon.stderr
    assert events_of(repo, ev.DISPATCH_RESULT)  # the agent in flight finished first
    assert not (repo.root / ".oxi" / "saturate.pid").exists()
