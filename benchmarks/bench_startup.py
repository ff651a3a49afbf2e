"""Start-up of the commands an operator runs, as whole processes: `oxi --help` against
`python -c "import click"`, and `oxi status --json` (a 10-item ledger) against `oxi --help`.

    .venv/bin/python benchmarks/bench_startup.py [--quick] [--python PATH]

Each pair runs the two commands one after the other (the order alternating) with a warm
bytecode cache, as an operator's install has; the figure is the median of the paired ratios.
Goals (issue 14): `oxi --help` stays where it is (<= 1.5x `import click`); `oxi status --json`
<= 1.6x `oxi --help`.
"""

from __future__ import annotations

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
    standalone,
    warm_env,
)


def rows(profile: Profile, python: str) -> list[Row]:
    oxi = oxi_program(python)
    with tempfile.TemporaryDirectory(prefix="oxi-bench-startup-") as folder:
        base = Path(folder)
        env = warm_env(base / "pycache")
        repo = exec_repo(base, 10)
        ingest_idle(repo, oxi, env, merged=False)
        help_pairs = process_pairs([oxi, "--help"], [python, "-c", "import click"],
                                   profile.pairs, cwd_a=repo, cwd_b=repo, env=env)
        status_pairs = process_pairs([oxi, "status", "--json"], [oxi, "--help"],
                                     profile.pairs, cwd_a=repo, cwd_b=repo, env=env)
    return [
        Row("help", "`oxi --help` vs `python -c \"import click\"`", help_pairs.ratio, 1.5,
            f"{help_pairs.ratio:.2f}x", "<= 1.5x",
            f"{help_pairs.median_a() * 1000:.0f} ms vs {help_pairs.median_b() * 1000:.0f} ms",
            "benchmarks/bench_startup.py"),
        Row("status", "`oxi status --json`, 10-item ledger, vs `oxi --help`", status_pairs.ratio,
            1.6, f"{status_pairs.ratio:.2f}x", "<= 1.6x",
            f"{status_pairs.median_a() * 1000:.0f} ms vs {status_pairs.median_b() * 1000:.0f} ms",
            "benchmarks/bench_startup.py"),
    ]


if __name__ == "__main__":
    standalone(rows, __doc__)
