"""What every test run here shares, for tests/, plugins/ and adapters/ alike.

CI sets OXI_REQUIRE_REAL_CLIS=1 (./dev test does, after installing the pinned agent CLIs): a test
that drives a real agent CLI must then run, and a skip because the CLI is missing is a failure.
Without the variable (a checkout without npm, say) such tests skip, saying how to install.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

REQUIRE_REAL_CLIS = "OXI_REQUIRE_REAL_CLIS"
INSTALL_HINT = "install-agent-clis"


def _needs_a_cli(item: pytest.Item, reason: str) -> bool:
    return item.get_closest_marker("real_cli") is not None or INSTALL_HINT in reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get(REQUIRE_REAL_CLIS) != "1":
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    if _needs_a_cli(item, reason):
        report.outcome = "failed"
        report.longrepr = (f"{REQUIRE_REAL_CLIS}=1: this test drives a real agent CLI and may "
                           f"not skip ({reason}); run scripts/install-agent-clis")
