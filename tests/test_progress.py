"""What a person at a terminal sees: live progress while agents work, then a summary."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner

from oxi_core.engine.engine import Engine
from oxi_core.engine.progress import in_flight_table, print_summary, run_with_progress
from tests.conftest import load, roadmap


def test_progress_runs_the_tick_and_the_summary_comes_from_the_ledger(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-1", "answer", "feature_1.py")),
                        agent_env={"AGENT_SLEEP": "0.6"})
    engine = Engine(load(repo))
    rows_seen: list[int] = []

    async def run_and_watch() -> object:
        job = asyncio.create_task(run_with_progress(engine))
        while not job.done():
            rows_seen.append(in_flight_table(engine).row_count)
            await asyncio.sleep(0.05)
        return job.result()

    report = asyncio.run(run_and_watch())
    assert report.dispatched == ["T1-1"]  # type: ignore[attr-defined]
    assert max(rows_seen) == 1  # the live table showed the working agent
    assert rows_seen[-1] == 0 or in_flight_table(engine).row_count == 0
    runner = CliRunner()
    result = runner.invoke(_summary_command(engine, report))
    assert "oxi tick: dispatched T1-1, merged T1-1" in result.output
    assert "tasks: merged 1" in result.output


def _summary_command(engine, report):  # type: ignore[no-untyped-def]
    import click

    @click.command()
    def show() -> None:
        from oxi_core.status import status_report

        print_summary(report, status_report(engine.ledger, recent=0))

    return show
