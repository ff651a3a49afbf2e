"""The token for git's own HTTPS traffic (fetch, push), through git's credential mechanism.

git reads configuration from the environment (`GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_n`,
`GIT_CONFIG_VALUE_n`): for the remote's origin only, the helpers configured elsewhere are
cleared and one helper answers `x-access-token` and the token, which it reads from the
`OXI_GITHUB_TOKEN` variable of that git process. The token is never on a command line, never
in `.git/config`, never in a remote URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from oxi_github.token import Token

TOKEN_VARIABLE = "OXI_GITHUB_TOKEN"  # noqa: S105 - a variable name, not a token
# git runs a helper that starts with "!" through the shell, with the operation ("get", "store",
# "erase") as its argument; the script holds no secret, only the variable's name.
HELPER = ('!f() { test "$1" = get && printf \'username=x-access-token\\npassword=%s\\n\' '
          f'"${TOKEN_VARIABLE}"; }}; f')


def credential_env(remote_url: str, token: Token,
                   environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables to add to a git process that talks to ``remote_url`` (none for SSH)."""
    parts = urlsplit(remote_url)
    if parts.scheme not in ("http", "https"):
        return {}
    host = parts.hostname or ""
    scope = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    env = os.environ if environ is None else environ
    first = int(env.get("GIT_CONFIG_COUNT") or 0)  # keep the operator's own entries
    return {
        TOKEN_VARIABLE: token.value,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": str(first + 2),
        f"GIT_CONFIG_KEY_{first}": f"credential.{scope}.helper",
        f"GIT_CONFIG_VALUE_{first}": "",  # an empty helper clears the ones configured before
        f"GIT_CONFIG_KEY_{first + 1}": f"credential.{scope}.helper",
        f"GIT_CONFIG_VALUE_{first + 1}": HELPER,
    }
