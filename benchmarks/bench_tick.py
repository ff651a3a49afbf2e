"""`oxi tick` as an operator runs it (whole processes), when it has nothing to do.

    .venv/bin/python benchmarks/bench_tick.py [--quick] [--python PATH]

- idle tick: a 1,000-item roadmap whose tasks are all merged, against `oxi --help`;
- flat in roadmap size: the same idle tick at 10,000 items against one at 100 items;
- peak RSS of the idle tick at 10,000 items, against `oxi --help`'s.

Each repository has a bare origin and the ledger its own ticks wrote (the roadmap ingested by
the oxi under test, then every task marked merged); a warm-up tick settles it first. Each pair
runs the two commands one after the other, the order alternating, with a warm bytecode cache;
the figure is the median of the paired ratios. Goals (issue 14): <= 1.6x `oxi --help`;
10,000 vs 100 items <= 1.25x; peak RSS <= 45 MiB.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Profile,
    Row,
    exec_repo,
    ingest_idle,
    oxi_program,
    process_pairs,
    run_process,
    standalone,
    warm_env,
)

RSS_GOAL_MIB = 45.0


def rows(profile: Profile, python: str) -> list[Row]:
    oxi = oxi_program(python)
    with tempfile.TemporaryDirectory(prefix="oxi-bench-tick-") as folder:
        base = Path(folder)
        env = warm_env(base / "pycache")
        repos = {}
        for items in (100, 1000, 10_000):
            repos[items] = exec_repo(base / str(items), items)
            ingest_idle(repos[items], oxi, env, merged=True)
            run_process([oxi, "tick"], cwd=repos[items], env=env)  # settles the ledger
        idle = process_pairs([oxi, "tick"], [oxi, "--help"], profile.pairs,
                             cwd_a=repos[1000], cwd_b=repos[1000], env=env)
        big_rss: list[float] = []
        flat = process_pairs([oxi, "tick"], [oxi, "tick"], profile.pairs,
                             cwd_a=repos[10_000], cwd_b=repos[100], env=env, rss=big_rss)
        help_rss = [run_process([oxi, "--help"], cwd=repos[100], env=env).max_rss_mib
                    for _ in range(3)]
    rss, base_rss = statistics.median(big_rss), statistics.median(help_rss)
    return [
        Row("tick_idle", "idle `oxi tick`, 1,000 items (nothing to do), vs `oxi --help`",
            idle.ratio, 1.6, f"{idle.ratio:.2f}x", "<= 1.6x",
            f"{idle.median_a() * 1000:.0f} ms vs {idle.median_b() * 1000:.0f} ms",
            "benchmarks/bench_tick.py"),
        Row("tick_flat", "idle `oxi tick`, 10,000 items vs 100 items", flat.ratio, 1.25,
            f"{flat.ratio:.2f}x", "<= 1.25x",
            f"{flat.median_a() * 1000:.0f} ms vs {flat.median_b() * 1000:.0f} ms",
            "benchmarks/bench_tick.py"),
        # The ratio to `oxi --help`'s peak RSS is what the regression guard compares; the goal
        # is in MiB (converted to that ratio with this run's baseline).
        Row("tick_rss", "peak RSS (MiB) of an idle `oxi tick` at 10,000 items, vs "
            "`oxi --help`'s", rss / base_rss, RSS_GOAL_MIB / base_rss, f"{rss:.0f}",
            f"<= {RSS_GOAL_MIB:.0f}", f"{rss:.1f} MiB vs {base_rss:.1f} MiB",
            "benchmarks/bench_tick.py"),
    ]


if __name__ == "__main__":
    standalone(rows, __doc__)
