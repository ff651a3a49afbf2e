"""Agent stream parsing and runner overhead, each against its baseline in the same run.

    .venv/bin/python benchmarks/bench_agentic.py [--lines 60000] [--repeat 5] [--runs 50]

1. Parse throughput: Claude Code stream-json and Codex JSONL (built from the recorded lines in
   plugins/*/tests/fixtures) through oxi_claude.events.ClaudeStream / oxi_codex.events.
   CodexStream (decode, canonical events, the fold) against a plain ``json.loads`` of the same
   lines. Target: the parsers keep >= 50% of the raw decode rate. The Claude stream is measured
   as Claude Code prints it with --include-partial-messages (most lines are token deltas, which
   the parser recognises without decoding) and without those lines (every line decoded), so the
   first figure does not flatter the second.
2. Runner overhead: ``true`` through oxi_core.agentic.runner.run_streaming (own process group,
   allow-listed environment, concurrent draining, the end-of-run group check) against
   ``subprocess.run(["true"])``; medians over ``--runs`` runs, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from oxi_claude.events import ClaudeStream
from oxi_codex.events import CodexStream

from oxi_core.agentic.runner import RunSpec, build_env, run_streaming

ROOT = Path(__file__).resolve().parent.parent
CLAUDE_FIXTURES = ROOT / "plugins" / "oxi-claude" / "tests" / "fixtures"
CODEX_FIXTURES = ROOT / "plugins" / "oxi-codex" / "tests" / "fixtures"


def fixture(folder: Path, name: str) -> list[str]:
    return (folder / f"{name}.jsonl").read_text().splitlines()


def claude_run() -> list[str]:
    """One Claude Code run as --include-partial-messages prints it: init, a tool call, token
    deltas, an answer, the result."""
    deltas = fixture(CLAUDE_FIXTURES, "claude_stream_event")
    return [
        *fixture(CLAUDE_FIXTURES, "claude_system_init"),
        *fixture(CLAUDE_FIXTURES, "claude_system_status"),
        *deltas,
        *fixture(CLAUDE_FIXTURES, "claude_assistant_tool_use"),
        *fixture(CLAUDE_FIXTURES, "claude_user_tool_result_ok"),
        *fixture(CLAUDE_FIXTURES, "claude_system_status"),
        *(deltas[:2] + deltas[2:3] * 30 + deltas[3:]),
        *fixture(CLAUDE_FIXTURES, "claude_assistant_text"),
        *fixture(CLAUDE_FIXTURES, "claude_result_success"),
    ]


def codex_run() -> list[str]:
    return [
        *fixture(CODEX_FIXTURES, "codex_command_execution")[:-1],
        *fixture(CODEX_FIXTURES, "codex_file_change")[2:-1],
        *fixture(CODEX_FIXTURES, "codex_reasoning")[2:],
    ]


def corpus(run: list[str], lines: int) -> list[str]:
    return (run * (lines // len(run) + 1))[:lines]


def best_rate(work: Callable[[], None], count: int, repeat: int) -> float:
    """Lines per second, best of ``repeat`` (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return count / best


def raw_decode(lines: list[str]) -> Callable[[], None]:
    def work() -> None:
        loads = json.loads
        for line in lines:
            loads(line)

    return work


def claude_parse(lines: list[str]) -> Callable[[], None]:
    def work() -> None:
        feed = ClaudeStream().feed_line
        for line in lines:
            feed(line)

    return work


def codex_parse(lines: list[str]) -> Callable[[], None]:
    def work() -> None:
        feed = CodexStream().feed_line
        for line in lines:
            feed(line)

    return work


def parse_table(lines_wanted: int, repeat: int) -> list[tuple[str, float, float, int]]:
    rows = []
    claude = corpus(claude_run(), lines_wanted)
    decoded = [line for line in claude if not line.startswith('{"type":"stream_event"')]
    codex = corpus(codex_run(), lines_wanted)
    for name, lines, parser in (
        ("claude stream-json (with token deltas)", claude, claude_parse),
        ("claude stream-json (no token deltas)", corpus(decoded, lines_wanted), claude_parse),
        ("codex exec --json", codex, codex_parse),
    ):
        raw = best_rate(raw_decode(lines), len(lines), repeat)
        parsed = best_rate(parser(lines), len(lines), repeat)
        size = sum(len(line) for line in lines) // len(lines)
        rows.append((name, parsed, raw, size))
    return rows


async def runner_once(spec: RunSpec) -> float:
    started = time.perf_counter()
    outcome = await run_streaming(spec, on_stdout=lambda _line: None)
    elapsed = time.perf_counter() - started
    assert outcome.exit_code == 0, outcome
    return elapsed


def runner_table(runs: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as folder:
        spec = RunSpec(argv=("true",), cwd=Path(folder), env=build_env())
        loop = asyncio.new_event_loop()
        try:
            ours: list[float] = []
            plain: list[float] = []
            for index in range(runs + 3):  # three warm-up rounds
                ran = loop.run_until_complete(runner_once(spec))
                started = time.perf_counter()
                subprocess.run(["true"], check=True)
                direct = time.perf_counter() - started
                if index >= 3:
                    ours.append(ran)
                    plain.append(direct)
        finally:
            loop.close()
    return ours, plain


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    print(f"parse throughput: {args.lines:,} lines each, best of {args.repeat}")
    print("| stream | avg line B | parser lines/s | json.loads lines/s | parser/raw |")
    print("|---|---:|---:|---:|---:|")
    for name, parsed, raw, size in parse_table(args.lines, args.repeat):
        print(f"| {name} | {size} | {parsed:,.0f} | {raw:,.0f} | {parsed / raw:.0%} |")

    ours, plain = runner_table(args.runs)
    print(f"\nrunner overhead for `true`: {args.runs} runs each, interleaved")
    print("| how | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, samples in (("run_streaming", ours), ("subprocess.run", plain)):
        ms = [s * 1000 for s in samples]
        print(f"| {name} | {statistics.median(ms):.2f} | {percentile(ms, 0.95):.2f} |")
    overhead = (statistics.median(ours) - statistics.median(plain)) * 1000
    print(f"\nrun_streaming - subprocess.run: {overhead:+.2f} ms (median)")


if __name__ == "__main__":
    main()
