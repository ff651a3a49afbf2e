"""What the benchmarks share: whole processes timed with their peak RSS, A/B pairs that
alternate, medians of paired ratios, a warm bytecode cache, and git processes counted.

These machines' speed drifts by a third within a minute and other people's test runs load
them, so a figure is only ever compared with a baseline measured in the same run, pair by pair:
each sample of A is divided by the sample of B taken next to it (the order alternating), and
the median of those ratios is the figure.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Variables that would change what a command under test does or how it starts.
_DROPPED_ENV = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "OXI_CONFIG", "OXI_LOG_LEVEL",
                "OXI_RAISE_ERRORS", "PYTEST_CURRENT_TEST", "OXI_LOAD_PLUGINS",
                "OXI_AGENTIC_SHADOW", "OXI_PROBE_READINGS")


def oxi_program(python: str | None = None) -> str:
    """The `oxi` console script of the environment whose Python is ``python`` (what an
    operator runs), by default this one's."""
    return str(Path(python or sys.executable).with_name("oxi"))


@dataclass(frozen=True)
class Sample:
    wall_s: float
    max_rss_mib: float


def warm_env(cache_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for commands under test: a warm bytecode cache of its own (an
    operator's install has one; the .pyc files go to ``cache_dir``, never into the tree)."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    env.update(extra or {})
    return env


def run_process(argv: Sequence[str], *, cwd: Path | None = None,
                env: Mapping[str, str] | None = None, check: bool = True) -> Sample:
    """One whole process: its wall time and its peak resident memory (from wait4)."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env else None,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=errors)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if check and proc.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode} in {cwd}:\n"
                               f"{errors.read().decode(errors='replace')[-2000:]}")
    return Sample(wall, usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux


@dataclass
class Pairs:
    """Samples of A and of B taken side by side, the order alternating."""

    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [x / y for x, y in zip(self.a, self.b, strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the paired ratios A/B."""
        return statistics.median(self.ratios)

    def median_a(self) -> float:
        return statistics.median(self.a)

    def median_b(self) -> float:
        return statistics.median(self.b)


def paired(a: Callable[[], float], b: Callable[[], float], runs: int, *,
           warmup: int = 1) -> Pairs:
    """``runs`` pairs of A and B; even pairs run A first, odd ones B first."""
    for _ in range(warmup):
        a()
        b()
    pairs = Pairs()
    for n in range(runs):
        if n % 2 == 0:
            x = a()
            y = b()
        else:
            y = b()
            x = a()
        pairs.a.append(x)
        pairs.b.append(y)
    return pairs


def process_pairs(a: Sequence[str], b: Sequence[str], runs: int, *, cwd_a: Path | None = None,
                  cwd_b: Path | None = None, env: Mapping[str, str] | None = None,
                  rss: list[float] | None = None) -> Pairs:
    """Wall times of two commands, paired; ``rss`` collects A's peak RSS (MiB) per run."""

    def run_a() -> float:
        sample = run_process(a, cwd=cwd_a, env=env)
        if rss is not None:
            rss.append(sample.max_rss_mib)
        return sample.wall_s

    return paired(run_a, lambda: run_process(b, cwd=cwd_b, env=env).wall_s, runs)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


# -- counting git processes --------------------------------------------------------------------

_GIT_SHIM = """#!/bin/sh
printf '%s\\n' "$*" >> "$OXI_BENCH_GIT_LOG"
exec {git} "$@"
"""


@contextmanager
def counting_git(folder: Path) -> Iterator[Callable[[], list[str]]]:
    """Within the block every `git` started through PATH (by this process and its children)
    is logged; the function yielded returns the command lines logged so far and forgets them.
    Use it for counting only: the shim costs a shell per git."""
    import shutil

    real = shutil.which("git")
    assert real is not None, "git is not on PATH"
    shim_dir = folder / "git-shim"
    shim_dir.mkdir(parents=True, exist_ok=True)
    shim = shim_dir / "git"
    shim.write_text(_GIT_SHIM.format(git=real))
    shim.chmod(0o755)
    log = folder / "git-commands.log"
    log.write_text("")
    saved = {name: os.environ.get(name) for name in ("PATH", "OXI_BENCH_GIT_LOG")}
    os.environ["PATH"] = f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["OXI_BENCH_GIT_LOG"] = str(log)

    def taken() -> list[str]:
        lines = log.read_text().splitlines()
        log.write_text("")
        return lines

    try:
        yield taken
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the results table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of `benchmarks/run`: a ratio against a baseline measured in the same run
    (lower is better), its goal, and the figures behind it."""

    key: str
    what: str
    ratio: float
    goal: float  # the largest ratio that meets the goal
    shown: str  # the figure as the issue states it (e.g. "1.43x", "64%", "7")
    goal_shown: str  # the goal as the issue states it (e.g. "<= 1.6x", ">= 50%", "<= 8")
    figures: str  # the measured values, baseline included
    command: str  # what produced it

    @property
    def met(self) -> bool:
        return self.ratio <= self.goal + 1e-12


def roadmap_text(items: int, *, tier: int = 2) -> str:
    """A roadmap of ``items`` canonical items, each touching its own file."""
    lines = ["# bench", ""]
    for n in range(1, items + 1):
        lines += [f"**T{tier}-{n} · item number {n}**", f"_touches `files/f{n}.txt`_", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class Profile:
    """How much to measure: ``quick`` for CI (a couple of minutes), ``full`` for the README."""

    name: str
    pairs: int  # process pairs per command
    tasks: int  # delivered tasks timed
    batches: int  # ledger batches of 1,000 events
    saturate_items: int
    saturate_sleep_s: float
    saturate_workers: int = 4
    saturate_runs: int = 1  # runs of `oxi saturate`; each figure is the median over them


PROFILES = {
    "quick": Profile("quick", pairs=20, tasks=10, batches=30, saturate_items=16,
                     saturate_sleep_s=1.0, saturate_runs=3),
    "full": Profile("full", pairs=40, tasks=15, batches=40, saturate_items=40,
                    saturate_sleep_s=2.0),
}


def table(rows: Sequence[Row]) -> str:
    """The rows as one plain-text table."""
    head = f"{'key':<16}{'ratio':>8}  {'goal':>9}  {'':<5}what (figures)"
    lines = [head, "-" * len(head)]
    for row in rows:
        mark = "ok" if row.met else "MISS"
        lines.append(f"{row.key:<16}{row.shown:>8}  {row.goal_shown:>9}  {mark:<5}{row.what}")
        lines.append(f"{'':<42}{row.figures}")
    return "\n".join(lines)


def standalone(rows_of: Callable[[Profile, str], list[Row]], doc: str) -> None:
    """`python benchmarks/bench_x.py [--quick] [--python PATH]`: print this benchmark's rows."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI profile")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python of the oxi install to measure (default: this one)")
    args = parser.parse_args()
    profile = PROFILES["quick" if args.quick else "full"]
    print(f"load average before: {load_average()}")
    rows = rows_of(profile, args.python)
    print(table(rows))
    print(f"load average after: {load_average()}")


def exec_repo(base: Path, items: int, *, agent: Sequence[str] | None = None,
              engine: Mapping[str, object] | None = None, name: str = "repo",
              critic: list[list[str]] | None = None,
              agent_env: Mapping[str, str] | None = None) -> Path:
    """A repository with a bare origin, a roadmap of ``items`` items and an oxi.toml whose
    worker is the `exec` agent (by default one that changes nothing)."""
    from oxi_core.testing.repos import exec_agent_toml, make_repo

    base.mkdir(parents=True, exist_ok=True)
    repo = make_repo(base, {"roadmap.md": roadmap_text(items)}, name=name)
    repo.write("oxi.toml", exec_agent_toml(list(agent or [sys.executable, "-c", "pass"]),
                                           critic=critic, agent_env=agent_env,
                                           engine=engine or {"max_concurrent": 1}))
    return repo.root


def ingest_idle(repo: Path, oxi: str, env: Mapping[str, str], *, merged: bool) -> None:
    """Ingest the roadmap with the oxi under test (paused, so nothing is dispatched); with
    ``merged``, every task is then history, so the next ticks have nothing to do."""
    for argv in ([oxi, "pause"], [oxi, "tick"], [oxi, "resume"]):
        run_process(argv, cwd=repo, env=env)
    # What any dispatch leaves behind: the (empty) folder worktrees go in.
    (repo / ".oxi" / "worktrees").mkdir(parents=True, exist_ok=True)
    if merged:
        import sqlite3

        conn = sqlite3.connect(repo / ".oxi" / "oxi.db")
        with conn:
            conn.execute("UPDATE tasks SET status = 'merged'")
        conn.close()
