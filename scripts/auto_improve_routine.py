#!/usr/bin/env python3
"""What a scheduled runner calls for auto-improve: open the ledger, scan once, exit.

    python scripts/auto_improve_routine.py [--config oxi.toml]

Idempotent per day: when a scan already finished today (UTC), it logs that and exits 0 without
fetching anything, so a runner that retries or fires twice costs nothing. Credentials (the
inference gateway's key, a GitHub token) come from the environment the runner fills from its
vault, named by oxi.toml's { env = "..." } values; never from a file. Exit codes: 0 a scan ran
or was not needed, 1 the scan could not run (the message says why), 2 oxi.toml is invalid.
docs/auto-improve.md describes running it as a Claude Code routine and in GitHub Actions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None,
                        help="oxi.toml (default: $OXI_CONFIG, else ./oxi.toml or a parent's)")
    args = parser.parse_args(argv)

    from oxi_core import log
    from oxi_core.auto_improve.service import run_scan
    from oxi_core.config import load_config
    from oxi_core.errors import OxiError

    log.configure(level="info")
    logger = log.get_logger("oxi.auto_improve.routine")
    try:
        # secrets=False: a source whose secret is missing fails alone, as its own event.
        config = load_config(args.config, secrets=False)
        report = run_scan(config, config.ledger, once_per_day=True)
    except OxiError as error:
        print(f"auto-improve routine: error: {log.redact_text(str(error))}", file=sys.stderr)
        return error.exit_code
    if report.skipped:
        logger.info("auto_improve_routine_skipped", reason=report.skipped)
        return 0
    logger.info("auto_improve_routine_done", digest=str(report.digest),
                proposals=[p.id for p in report.emitted], failures=len(report.failures),
                stalled=report.stalled, paused=report.paused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
