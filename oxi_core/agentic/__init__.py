"""Agentic adapters: the protocol, canonical events, DispatchResult, and the shared runner."""

from __future__ import annotations

from oxi_core.agentic.types import (
    CanonicalEvent,
    CanonicalKind,
    DispatchRequest,
    DispatchResult,
    EventCallback,
    Usage,
)
from oxi_core.models import Classification
from oxi_core.protocols import AgenticAdapter

__all__ = [
    "AgenticAdapter",
    "CanonicalEvent",
    "CanonicalKind",
    "Classification",
    "DispatchRequest",
    "DispatchResult",
    "EventCallback",
    "Usage",
]
