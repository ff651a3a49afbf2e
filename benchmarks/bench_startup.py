"""Cold start of `oxi --help` against a bare click CLI and `python -c pass`, in the same run.

    .venv/bin/python benchmarks/bench_startup.py [--runs 30]

Each command runs as a fresh subprocess; the three are interleaved run by run so that machine
noise hits them alike. Measured twice: with a warm bytecode cache (what an operator's install
has; the .pyc files go to a temporary PYTHONPYCACHEPREFIX, not into the tree) and with none
(PYTHONDONTWRITEBYTECODE=1, as some development shells set: every module is compiled from
source on every start). Target: `oxi --help` median <= 100 ms with a warm cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_CLICK = '''
import click


@click.group()
def cli():
    """A bare click CLI with one command."""


@cli.command()
def hello():
    """Say hello."""
    click.echo("hello")


if __name__ == "__main__":
    cli()
'''


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return (time.perf_counter() - start) * 1000


def measure(
    commands: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, list[float]]:
    for argv in commands.values():  # warm the page cache (and the bytecode cache, if any)
        time_once(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(time_once(argv, env))
    return samples


def report(title: str, samples: dict[str, list[float]], runs: int) -> float:
    print(f"{title}, {runs} runs each (ms)".ljust(42) + "median      p95      min")
    for name, values in samples.items():
        print(
            f"  {name:<36}{statistics.median(values):7.1f}  {percentile(values, 0.95):7.1f}"
            f"  {min(values):7.1f}"
        )
    oxi_median = statistics.median(samples["oxi --help"])
    over_click = oxi_median - statistics.median(samples["bare click CLI --help"])
    print(f"  oxi over the bare click CLI: {over_click:+.1f} ms")
    return oxi_median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    python = sys.executable
    oxi = Path(python).with_name("oxi")
    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "OXI_CONFIG"}
    }
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_click.py"
        bare.write_text(BARE_CLICK, encoding="utf-8")
        commands = {
            "oxi --help": [str(oxi), "--help"],
            "bare click CLI --help": [python, str(bare), "--help"],
            "python -c pass": [python, "-c", "pass"],
        }
        warm_env = {**base_env, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        cold_env = {**base_env, "PYTHONDONTWRITEBYTECODE": "1"}
        warm = measure(commands, warm_env, args.runs)
        cold = measure(commands, cold_env, args.runs)

    oxi_median = report("warm bytecode cache", warm, args.runs)
    verdict = "met" if oxi_median <= 100 else "MISSED"
    print(f"  target oxi --help median <= 100 ms: {verdict} ({oxi_median:.1f} ms)")
    print()
    report("no bytecode cache", cold, args.runs)


if __name__ == "__main__":
    main()
