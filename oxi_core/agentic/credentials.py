"""Where an agent's refused credential came from, so the message names what to fix."""

from __future__ import annotations

from collections.abc import Mapping


def credential_fix(keys: Mapping[str, str | None], unset: str) -> str:
    """What to fix when the provider refused the credentials: for each key given (its kwargs
    name -> value), the environment variable and the oxi.toml key it was read through, or the
    key as written in oxi.toml; ``unset`` when none was given."""
    from oxi_core.config import secret_origin

    found = [secret_origin(value) or f"kwargs.{name} in oxi.toml"
             for name, value in keys.items() if value]
    return "fix " + " or ".join(dict.fromkeys(found)) if found else unset
