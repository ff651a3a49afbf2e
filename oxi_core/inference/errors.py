"""Why an inference call failed, classified the way agent runs are (see models.Classification)."""

from __future__ import annotations

from oxi_core.errors import OxiError
from oxi_core.models import PROVIDER_FAILURES, Classification, FailureKind

__all__ = ["PROVIDER_FAILURES", "UNREACHABLE", "FailureKind", "InferenceError", "kind_for_status",
           "retry_after_seconds"]


# The gateway (or provider) could not be reached or answered nothing usable.
UNREACHABLE = frozenset({FailureKind.TIMEOUT, FailureKind.CONNECTION})

_CLASSIFICATION = {
    FailureKind.TIMEOUT: Classification.RETRYABLE_TRANSIENT,
    FailureKind.CONNECTION: Classification.RETRYABLE_TRANSIENT,
    FailureKind.RATE_LIMITED: Classification.RETRYABLE_TRANSIENT,
    FailureKind.SERVER_ERROR: Classification.RETRYABLE_TRANSIENT,
    FailureKind.OVERLOADED: Classification.RETRYABLE_TRANSIENT,
    # A 200 whose body is cut or garbled: a proxy or upstream glitch, worth another try.
    FailureKind.MALFORMED: Classification.RETRYABLE_TRANSIENT,
    FailureKind.CREDENTIALS: Classification.FAILED,
    FailureKind.BAD_REQUEST: Classification.FAILED,
    FailureKind.BUDGET: Classification.FAILED,
    FailureKind.NOT_CONFIGURED: Classification.FAILED,
}


class InferenceError(OxiError):
    """An inference call that produced no answer. ``kind`` says why, ``classification`` what a
    caller should do (retry later or give up), ``retry_after_s`` when the server said so."""

    def __init__(
        self, message: str, *, kind: FailureKind, status: int | None = None,
        retry_after_s: float | None = None, target: str = "", model: str = "",
        hint: str | None = None,
    ) -> None:
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        self.target = target
        self.model = model
        super().__init__(message, hint=hint)

    @property
    def classification(self) -> Classification:
        return _CLASSIFICATION[self.kind]

    @property
    def provider_failure(self) -> bool:
        """True when another target of the fallback chain could answer instead."""
        return self.kind in PROVIDER_FAILURES

    def as_payload(self) -> dict[str, object]:
        return {"kind": str(self.kind), "classification": str(self.classification),
                "status": self.status, "retry_after_s": self.retry_after_s,
                "error": self.message}


def kind_for_status(status: int, body_text: str = "") -> FailureKind:
    """The failure an HTTP error status means."""
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status in (401, 403):
        return FailureKind.CREDENTIALS
    if status == 529 or (status == 503 and "overload" in body_text.lower()):
        return FailureKind.OVERLOADED
    if status == 408:
        return FailureKind.TIMEOUT
    if status >= 500:
        return FailureKind.SERVER_ERROR
    return FailureKind.BAD_REQUEST


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    """``retry-after-ms`` or ``retry-after`` (seconds; an HTTP date is not worth parsing here)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None
