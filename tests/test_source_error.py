"""SourceError: what a failing auto-improve source raises, and what its failure event records."""

from __future__ import annotations

import oxi_core
from oxi_core.errors import OxiError, SourceError


def test_source_error_names_the_source_and_carries_the_reason_and_exit_code() -> None:
    error = SourceError("x tool exited 3: rate limited", source="x", returncode=3,
                        details={"stderr_tail": "rate limited"}, hint="wait, or raise the cap")
    assert isinstance(error, OxiError)
    assert error.exit_code == 1  # the CLI's exit code, not the tool's
    assert oxi_core.SourceError is SourceError
    assert str(error) == "source x: x tool exited 3: rate limited (wait, or raise the cap)"
    assert error.payload() == {
        "source": "x", "reason": "x tool exited 3: rate limited", "exit_code": 3,
        "hint": "wait, or raise the cap", "details": {"stderr_tail": "rate limited"},
    }


def test_a_source_error_without_a_subprocess_has_no_exit_code() -> None:
    payload = SourceError("GET /feed answered 500", source="newsletter:latent_space").payload()
    assert payload["exit_code"] is None
    assert "details" not in payload
