"""How many workers this host can take now (T2-43).

recommend = min(RAM envelope, CPU envelope, plan-tier envelope, ceiling), where the CPU
envelope is max(1, cpu_count − 5-minute load average): a host already busy with other work
gets fewer workers than its free memory alone would suggest.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable

import attrs

from oxi_core.errors import OxiError

GIB = 1024**3
# What one agent worker (a CLI, its node runtime, tests it runs) needs in memory.
DEFAULT_WORKER_RAM_BYTES = int(1.5 * GIB)
# Memory left to the rest of the host, whatever oxi wants.
DEFAULT_RESERVE_BYTES = 2 * GIB
# Concurrent sessions a provider plan allows; `None` means no plan limit.
PLAN_TIER_ENVELOPES: dict[str, int | None] = {
    "free": 1, "pro": 2, "max": 5, "team": 8, "api": None,
}


@attrs.frozen
class HostReadings:
    available_ram_bytes: int
    cpu_count: int
    load_avg_5min: float


# Readings to use instead of the host's, as JSON with HostReadings' fields (any subset):
# what the tests and benchmarks inject, and what an operator can set to pin the probe.
READINGS_ENV = "OXI_PROBE_READINGS"


def read_host() -> HostReadings:
    import psutil

    readings = HostReadings(
        available_ram_bytes=int(psutil.virtual_memory().available),
        cpu_count=os.cpu_count() or 1,
        load_avg_5min=float(os.getloadavg()[1]),
    )
    return _override(readings, os.environ.get(READINGS_ENV))


def _override(readings: HostReadings, raw: str | None) -> HostReadings:
    if not raw:
        return readings
    names = [field.name for field in attrs.fields(HostReadings)]
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or set(data) - set(names):
            raise ValueError(f"expected an object with keys among {', '.join(names)}")
        return HostReadings(
            available_ram_bytes=int(data.get("available_ram_bytes",
                                             readings.available_ram_bytes)),
            cpu_count=int(data.get("cpu_count", readings.cpu_count)),
            load_avg_5min=float(data.get("load_avg_5min", readings.load_avg_5min)),
        )
    except (ValueError, TypeError) as error:
        raise OxiError(f"${READINGS_ENV} is not valid: {error}",
                       hint='e.g. {"cpu_count": 8, "load_avg_5min": 0.5}') from error


@attrs.frozen
class Recommendation:
    ram_envelope: int
    cpu_envelope: int
    plan_tier_envelope: int | None
    ceiling: int
    recommended: int
    readings: HostReadings

    def as_json(self) -> dict[str, object]:
        return {
            "ram_envelope": self.ram_envelope,
            "cpu_envelope": self.cpu_envelope,
            "plan_tier_envelope": self.plan_tier_envelope,
            "ceiling": self.ceiling,
            "recommended": self.recommended,
            "readings": attrs.asdict(self.readings),
        }


def ram_envelope(readings: HostReadings, *, worker_ram_bytes: int = DEFAULT_WORKER_RAM_BYTES,
                 reserve_bytes: int = DEFAULT_RESERVE_BYTES) -> int:
    usable = max(0, readings.available_ram_bytes - reserve_bytes)
    return max(1, usable // worker_ram_bytes)


def cpu_envelope(readings: HostReadings) -> int:
    return max(1, math.floor(readings.cpu_count - readings.load_avg_5min))


def recommend_concurrency(
    *, ceiling: int, plan_tier: str = "api", read: Callable[[], HostReadings] = read_host,
    worker_ram_bytes: int = DEFAULT_WORKER_RAM_BYTES,
) -> Recommendation:
    readings = read()
    ram = ram_envelope(readings, worker_ram_bytes=worker_ram_bytes)
    cpu = cpu_envelope(readings)
    plan = PLAN_TIER_ENVELOPES.get(plan_tier)
    candidates = [ram, cpu, ceiling] + ([plan] if plan is not None else [])
    return Recommendation(ram, cpu, plan, ceiling, max(1, min(candidates)), readings)
