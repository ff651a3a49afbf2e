"""Which GitHub token oxi uses, and where it came from (named in every error about it).

In order: the forge's `token` kwarg (write `{ env = "NAME" }` in oxi.toml), else `GH_TOKEN`,
else `GITHUB_TOKEN`, else `gh auth token` when the GitHub CLI is installed. The value is
registered with oxi's redactor, so it never reaches a log line or the ledger.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs

from oxi_core.errors import ForgeSetupError
from oxi_core.log import register_secret

GH_AUTH_TIMEOUT_S = 10.0
ENV_NAMES = ("GH_TOKEN", "GITHUB_TOKEN")


@attrs.frozen
class Token:
    value: str = attrs.field(repr=False)
    origin: str  # where it came from, for messages: never the value


def find_token(*, configured: str | None, configured_origin: str, host: str = "github.com",
               environ: Mapping[str, str] | None = None, gh: str = "gh") -> Token:
    """The token to use, or a ForgeSetupError that lists every place looked in."""
    env = os.environ if environ is None else environ
    token: Token | None = None
    if configured:
        token = Token(configured, configured_origin)
    else:
        for name in ENV_NAMES:
            if env.get(name):
                token = Token(env[name], f"the environment variable {name}")
                break
    if token is None:
        token = _from_gh_cli(gh, host, env)
    if token is None:
        raise ForgeSetupError(
            "no GitHub token: the forge's `token` kwarg is not set, GH_TOKEN and GITHUB_TOKEN "
            "are empty, and `gh auth token` gave none",
            hint='set [forges.github] kwargs = { token = { env = "NAME" } } in oxi.toml, or '
                 "export GH_TOKEN (docs/runbooks/github.md lists the scopes it needs)")
    register_secret(token.value)
    return token


def token_for_api(api_url: str, configured: str, where: str) -> Token:
    """The token for the API at ``api_url``: ``configured`` (a kwarg, named by where it was
    read from, else by ``where``), else the environment, else `gh auth token` for that host."""
    from oxi_core.config import secret_origin

    origin = secret_origin(configured) if configured else None
    host = urlsplit(api_url).hostname or "github.com"
    return find_token(configured=configured or None, configured_origin=origin or where,
                      host="github.com" if host == "api.github.com" else host)


def _from_gh_cli(gh: str, host: str, env: Mapping[str, str]) -> Token | None:
    binary = shutil.which(gh, path=env.get("PATH"))
    if binary is None:
        return None
    argv = [binary, "auth", "token"] + ([] if host == "github.com" else ["--hostname", host])
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=GH_AUTH_TIMEOUT_S,
                                stdin=subprocess.DEVNULL, check=False, env=dict(env))
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = result.stdout.strip()
    if result.returncode != 0 or not value:
        return None
    return Token(value, f"`gh auth token`{'' if host == 'github.com' else ' --hostname ' + host}")
