"""Fixtures for the unattended tests: `oxi` subprocesses that are always stopped, and a check
that no agent process outlives its test."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from oxi_core.testing.repos import TestRepo
from tests.unattended.support import OxiProcess, leaked_agents


class Oxi:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: list[OxiProcess] = []
        self.repos: list[TestRepo] = []
        self.pid_dir = tmp_path / "agent-pids"
        self.pid_dir.mkdir()

    def start(self, args: Sequence[str], repo: TestRepo,
              env: dict[str, str] | None = None) -> OxiProcess:
        """Start `oxi ARGS` in ``repo`` (watched for leaked agents at teardown)."""
        self.watch(repo)
        process = OxiProcess(args, repo.root, env, log_dir=self.tmp_path / "oxi-logs")
        self.processes.append(process)
        return process

    def watch(self, repo: TestRepo) -> None:
        if repo not in self.repos:
            self.repos.append(repo)

    def leaks(self) -> list[int]:
        return [pid for repo in self.repos for pid in leaked_agents(repo, self.pid_dir)]


@pytest.fixture
def oxi(tmp_path: Path) -> Iterator[Oxi]:
    runner = Oxi(tmp_path)
    try:
        yield runner
    finally:
        for process in runner.processes:
            process.stop()
    leaked = runner.leaks()
    assert not leaked, f"agent processes outlived the test (killed now): {leaked}"
