"""Is the gateway up? The check ``oxi doctor`` runs against every inference target that can
say (``health()``), skipped with ``OXI_INFERENCE_OFFLINE=1`` (CI, air-gapped hosts)."""

from __future__ import annotations

import os
from typing import Any

import attrs

OFFLINE_ENV = "OXI_INFERENCE_OFFLINE"


@attrs.frozen
class Health:
    target: str  # the [inference.NAME]
    url: str
    ok: bool
    detail: str


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def check_health(name: str, url: str, *, timeout_s: float = 5.0,
                 headers: dict[str, str] | None = None) -> Health:
    """GET ``url``: up when it answers 2xx in time."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_s, headers=headers or {}, trust_env=False)
    except httpx.HTTPError as error:
        return Health(name, url, False, f"unreachable: {type(error).__name__}: {error}")
    if response.status_code >= 300:
        return Health(name, url, False, f"HTTP {response.status_code}: {response.text[:200]}")
    return Health(name, url, True, response.text.strip()[:200])


def gateway_health(config: Any) -> list[Health]:
    """Every configured inference target that has a health route, checked; [] when offline."""
    if offline():
        return []
    found = []
    for name, target in config.instances.get("inference", {}).items():
        health = getattr(target, "health", None)
        result = health(name) if callable(health) else None
        if result is not None:
            found.append(result)
    return found
