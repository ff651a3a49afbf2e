"""What a person at a terminal sees: live progress while agents work, then a summary."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import tomli_w
from click.testing import CliRunner

from oxi_core.config import load_config
from oxi_core.engine.engine import Engine
from oxi_core.engine.progress import in_flight_table, print_summary, run_with_progress
from oxi_core.testing.repos import make_repo
from tests.conftest import load, roadmap
from tests.unattended.support import OxiProcess, events_of, running, wait_for


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


# -- a real terminal, the live table, and saturate's lines ------------------------------------

SLOW_AGENT = """\
import json, os, pathlib, time
task = os.environ["OXI_TASK_ID"]
print(json.dumps({"type": "assistant", "text": "reading", "message_id": "m1",
                  "usage": {"input_tokens": 200000, "output_tokens": 10000}}), flush=True)
time.sleep(float(os.environ.get("AGENT_SLEEP", "1")))
pathlib.Path(f"{task}.txt").write_text("done\\n")
print(json.dumps({"type": "result", "cost_usd": 0.5}))
"""
SLOW_CRITIC = [sys.executable, "-c", "import time; time.sleep(1.2)"]


def slow_repo(tmp_path: Path, items: list[tuple[str, str, str]], **agent: object):  # type: ignore[no-untyped-def]
    script = tmp_path / "slow_agent.py"
    script.write_text(SLOW_AGENT)
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(*items) + "\n**T1-x bad · broken**\n"})
    repo.write("oxi.toml", tomli_w.dumps({
        "adapter": {"class": "oxi_adapter_self.SelfAdapter", "kwargs": {"repo_root": "."}},
        "agents": {"worker": {"type": "exec", "kwargs": {
            "argv": [sys.executable, str(script)], "model": "claude-sonnet-4-5", **agent}}},
        "judges": {"critic": {"type": "command", "kwargs": {"commands": [SLOW_CRITIC]}}},
        "forges": {"local": {"type": "local"}}}))
    return repo


def run_in_terminal(argv: list[str], cwd: Path) -> str:
    """What a 120-column terminal receives from ``argv`` (stdout and stderr both a tty)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OXI_", "PYTEST_"))}
    proc = subprocess.Popen(argv, cwd=cwd, env={**env, "OXI_RAISE_ERRORS": "0"}, stdin=slave,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    received = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                received += chunk
            elif proc.poll() is not None:
                break
    finally:
        proc.wait(timeout=120)
        os.close(master)
    return received.decode(errors="replace")


def screen(raw: str) -> list[str]:
    """The lines left on a terminal after ``raw``: text, carriage return, newline, and the
    sequences rich's live display uses (cursor up, erase line; colours change no text)."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", raw):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif token.startswith("\x1b["):
            if token[-1] == "A":
                row = max(0, row - int(token[2:-1] or 1))
            elif token[-1] == "K":
                lines[row] = lines[row][:col] if token[2:-1] in ("", "0") else ""
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    return [line.rstrip() for line in lines if line.strip()]


def test_on_a_terminal_log_lines_print_above_the_live_table_which_leaves_nothing(
    tmp_path: Path,
) -> None:
    repo = slow_repo(tmp_path, [("T1-1", "slow", "T1-1.txt")])

    shown = screen(run_in_terminal([str(Path(sys.executable).with_name("oxi")), "tick"],
                                   repo.root))

    logs = [line for line in shown if "[warning  ]" in line or "[info     ]" in line]
    assert any("roadmap_warning" in line for line in logs), shown
    assert any("dispatch_result" in line for line in logs), shown
    assert not any("oxi: in flight" in line or "┃" in line for line in shown), shown
    assert "oxi tick: dispatched T1-1, merged T1-1" in shown


def test_the_live_table_shows_the_cost_seen_so_far_and_the_critics_review(
    tmp_path: Path,
) -> None:
    repo = slow_repo(tmp_path, [("T1-1", "slow", "T1-1.txt")])
    engine = Engine(load_config(repo.config))
    rows: list[tuple[str, ...]] = []

    async def watch() -> None:
        job = asyncio.create_task(run_with_progress(engine))
        while not job.done():
            table = in_flight_table(engine)
            columns = [list(column.cells) for column in table.columns]
            rows.extend(tuple(str(c[i]) for c in columns) for i in range(table.row_count))
            await asyncio.sleep(0.05)
        await job

    asyncio.run(watch())

    doing = {row[3] for row in rows}
    assert "agent" in doing and "review (critic)" in doing, doing
    during = [row for row in rows if row[3] == "agent" and row[4] == "assistant"]
    # 200k input and 10k output tokens of claude-sonnet-4-5 by the rate card: an estimate
    assert during and all(row[7].startswith("~") and float(row[7][1:]) > 0.5 for row in during)
    assert all(row[4] != "None" for row in rows)
    reviewed = [row for row in rows if row[3] == "review (critic)"]
    assert reviewed[-1][7] == "0.5000"  # the run's own figure, once its result said


def test_saturate_prints_one_line_per_tick_that_did_something(tmp_path: Path) -> None:
    repo = slow_repo(tmp_path, [("T1-1", "one", "T1-1.txt"), ("T1-2", "two", "T1-2.txt")],
                     env={"AGENT_SLEEP": "0.2"})
    text = OxiProcess(["saturate", "-j", "1", "--interval", "0.1"], repo.root,
                      log_dir=tmp_path / "text")
    with running(text) as daemon:
        wait_for(lambda: len(events_of(repo, "task_merged")) == 2, timeout=60,
                 what="both tasks to merge")
        time.sleep(0.5)  # idle ticks: they print nothing
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.stderr

    lines = daemon.stdout.splitlines()
    ticks = [line for line in lines if re.match(r"\d\d:\d\d:\d\d tick \d+: ", line)]
    assert ticks and lines[len(ticks):] == [lines[-1]], lines
    assert lines[-1].startswith("oxi saturate: stopped (SIGTERM) after ")
    told = " ".join(ticks)
    assert "dispatched T1-1" in told and "T1-1 merged" in told and "T1-2 merged" in told
    started = int(re.search(r"after (\d+) ticks", lines[-1])[1])  # type: ignore[index]
    assert len(ticks) < started  # the idle ticks said nothing


def test_saturate_jsonl_prints_one_json_line_per_tick_and_one_when_it_stops(
    tmp_path: Path,
) -> None:
    repo = slow_repo(tmp_path, [("T1-1", "one", "T1-1.txt")], env={"AGENT_SLEEP": "0.1"})
    with running(OxiProcess(["saturate", "-j", "1", "--interval", "0.1", "--jsonl"], repo.root,
                            log_dir=tmp_path / "jsonl")) as daemon:
        wait_for(lambda: events_of(repo, "task_merged"), timeout=60, what="the merge")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.stderr

    records = [json.loads(line) for line in daemon.stdout.splitlines()]
    assert {(r["version"], r["command"]) for r in records} == {(1, "saturate")}
    assert [r["kind"] for r in records][-1] == "stopped"
    assert {r["kind"] for r in records[:-1]} == {"tick"}
    assert any(r["dispatched"] == ["T1-1"] for r in records[:-1])
    assert any({"task": "T1-1", "outcome": "merged", "reason": ""} in r["ended"]
               for r in records[:-1])
