"""Where the token comes from, in order, and that every message names that place (never the
value): the forge's `token` kwarg, GH_TOKEN, GITHUB_TOKEN, then `gh auth token`."""

from __future__ import annotations

from pathlib import Path

import pytest
from oxi_github.token import find_token

from oxi_core.errors import ForgeSetupError
from oxi_core.log import REDACTED, redact_text


def fake_gh(folder: Path, token: str, *, exit_code: int = 0) -> Path:
    """A `gh` on PATH that answers `gh auth token` as the GitHub CLI does."""
    folder.mkdir(parents=True, exist_ok=True)
    gh = folder / "gh"
    gh.write_text(f'#!/bin/sh\n[ "$1 $2" = "auth token" ] || exit 2\n'
                  f'echo "$@" > "{folder}/argv"\necho "{token}"\nexit {exit_code}\n')
    gh.chmod(0o755)
    return folder


def test_the_configured_token_comes_first_and_names_its_place() -> None:
    found = find_token(configured="ghp_configured00000000000000000000000",
                       configured_origin="the environment variable MY_TOKEN",
                       environ={"GH_TOKEN": "ghp_other", "PATH": ""})
    assert found.value == "ghp_configured00000000000000000000000"
    assert found.origin == "the environment variable MY_TOKEN"
    assert "ghp_configured" not in repr(found)


@pytest.mark.parametrize(("environ", "origin"), [
    ({"GH_TOKEN": "ghp_a", "GITHUB_TOKEN": "ghp_b"}, "the environment variable GH_TOKEN"),
    ({"GITHUB_TOKEN": "ghp_b"}, "the environment variable GITHUB_TOKEN"),
])
def test_then_gh_token_then_github_token(environ: dict[str, str], origin: str) -> None:
    found = find_token(configured=None, configured_origin="", environ={**environ, "PATH": ""})
    assert found.origin == origin


def test_then_the_github_cli(tmp_path: Path) -> None:
    bin_dir = fake_gh(tmp_path / "bin", "gho_fromthecli000000000000000000000000")
    found = find_token(configured=None, configured_origin="", environ={"PATH": str(bin_dir)})
    assert found.value == "gho_fromthecli000000000000000000000000"
    assert found.origin == "`gh auth token`"
    enterprise = find_token(configured=None, configured_origin="", host="ghe.example.com",
                            environ={"PATH": str(bin_dir)})
    assert enterprise.origin == "`gh auth token` --hostname ghe.example.com"
    assert (bin_dir / "argv").read_text().strip() == "auth token --hostname ghe.example.com"


def test_none_anywhere_lists_every_place_looked(tmp_path: Path) -> None:
    logged_out = fake_gh(tmp_path / "bin", "", exit_code=1)
    with pytest.raises(ForgeSetupError) as caught:
        find_token(configured=None, configured_origin="", environ={"PATH": str(logged_out)})
    message = str(caught.value)
    assert "`token` kwarg" in message and "GH_TOKEN and GITHUB_TOKEN" in message
    assert "gh auth token" in message and "docs/runbooks/github.md" in message


def test_a_found_token_is_redacted_from_logs_and_the_ledger() -> None:
    secret = "plain-token-without-a-known-shape-1234"
    find_token(configured=None, configured_origin="", environ={"GH_TOKEN": secret, "PATH": ""})
    assert redact_text(f"Authorization: {secret}") == f"Authorization: {REDACTED}"
