"""structlog set-up: a console renderer on a TTY, JSON lines otherwise; secrets are redacted."""

from __future__ import annotations

import contextvars
import json
import re
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, TextIO

# A bare ``sk-`` key starts a token: "task-state-machine-docs" (a branch slug) is not a key.
# A JSON or repr() escape (\n, \t, \u00e9) just before the key counts as a token start too,
# since the ledger redacts serialised JSON and renderers print repr(). The longer prefixes
# (sk-ant-, sk-proj-, ...) are distinctive enough to be caught anywhere. The same escapes
# (a tab, a newline) part "Bearer" from its token as well as whitespace does.
_ESCAPE = r"\\[nrtbf]|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}"
_KEY_START = r"(?:(?<![A-Za-z0-9])|(?<=\\[nrtbf])|(?<=\\u[0-9a-fA-F]{4})|(?<=\\x[0-9a-fA-F]{2}))"

# Shapes of credentials that must never reach a log line, whatever field they hide in.
_KEY_SHAPES = re.compile(
    r"(?:sk-ant-[A-Za-z0-9_\-]{8,}"
    r"|sk-(?:proj-|or-v1-|litellm-)[A-Za-z0-9_\-]{16,}"
    rf"|{_KEY_START}sk-[A-Za-z0-9_\-]{{16,}}"
    r"|xai-[A-Za-z0-9]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|AKIA[0-9A-Z]{16}"
    rf"|(?i:bearer)(?:\s|{_ESCAPE})+[A-Za-z0-9._\-]{{12,}})"
)
_SECRET_FIELD = re.compile(r"(?i)(api[_-]?key|token|secret|password|authorization)")
REDACTED = "[REDACTED]"

_lock = threading.Lock()
# Longest first, so a secret that contains another is replaced whole. Rebuilt on register,
# read without the lock: redaction runs on every ledger append.
_known_secrets: tuple[str, ...] = ()


def _spellings(value: str) -> set[str]:
    """The secret as written, and as JSON and repr() escape it (quotes, backslashes, non-ASCII):
    rendered log lines and ledger payloads hold the escaped form, not the raw one."""
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }


def register_secret(value: str) -> None:
    """Remember a value read through ``{ env = ... }`` so it is redacted wherever it appears."""
    global _known_secrets
    if len(value) >= 4:
        with _lock:
            _known_secrets = tuple(
                sorted({*_known_secrets, *_spellings(value)}, key=len, reverse=True)
            )


# Literal text that every _KEY_SHAPES match contains (keep the two in step): a text holding none
# of it cannot match, and may_hold_secret() says so without running the regex, which is slow
# to scan with (about 5 us for a 300-character payload against 1 us for these checks).
_SHAPE_NEEDLES = ("sk-", "xai-", "AKIA", "github_pat_")
_GH_TOKEN = re.compile(r"gh[pousr]_")
# In a long text (a batch of payloads: 200,000 characters in 0.48 ms instead of 0.68) the re
# module finds a short literal faster than `in` does, but for "github_pat_"; in a short one (a
# log field) the call costs more than the search.
_LONG_TEXT = 256
_SHAPE_SEARCHES = tuple(re.compile(needle).search for needle in _SHAPE_NEEDLES[:3])
_BEARER = re.compile("bearer").search  # in the lower-cased text


def may_hold_secret(text: str) -> bool:
    """False only when ``redact_text(text)`` would certainly return ``text`` unchanged."""
    if len(text) < _LONG_TEXT:
        for needle in _SHAPE_NEEDLES:
            if needle in text:
                return True
        if "bearer" in text.lower():
            return True
    else:
        for search in _SHAPE_SEARCHES:
            if search(text) is not None:
                return True
        if "github_pat_" in text or _BEARER(text.lower()) is not None:
            return True
    if _GH_TOKEN.search(text) is not None:
        return True
    return any(secret in text for secret in _known_secrets)


def redact_text(text: str) -> str:
    if not may_hold_secret(text):
        return text
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)


_PLAIN = (int, float, bool, type(None))


def redact(value: Any) -> Any:
    """Redact secrets inside strings, mappings and sequences (used for logs and the ledger).

    Keys are redacted too, and any other object whose repr() (what renderers print) holds a
    secret is replaced by its redacted repr().
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Mapping):
        return {
            redact(key): (
                REDACTED
                if _SECRET_FIELD.search(str(key)) and isinstance(item, str) and item
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact(item) for item in value]
        if type(value) in (list, tuple, set, frozenset):
            return type(value)(items)
        if isinstance(value, tuple) and hasattr(value, "_make"):  # a named tuple
            return value._make(items)
        return items  # another subclass may not be constructible from one iterable
    text = repr(value)
    cleaned = redact_text(text)
    return value if cleaned == text else cleaned


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    redacted = redact(dict(event_dict))
    event_dict.clear()
    event_dict.update(redacted)
    return event_dict


def _redact_rendered(as_json: bool) -> Any:
    """The last processor: a safety net over the rendered line, whatever put a secret in it."""

    def processor(_logger: Any, _method: str, line: str) -> str:
        cleaned = redact_text(line)
        if cleaned == line or not as_json:
            return cleaned
        try:
            json.loads(cleaned)
        except ValueError:
            # A secret matched across JSON syntax (e.g. inside a number): keep the line valid.
            return redact_text(json.dumps({"event": "log line redacted", "line": cleaned}))
        return cleaned

    return processor


# structlog is imported only when a line is logged: with rich installed, importing it costs more
# than the rest of an idle `oxi tick` (structlog imports its console renderer, which imports
# rich, and structlog.stdlib, which imports asyncio). configure() records what to set up;
# the first line logged applies it. A tick that logs nothing never imports structlog.
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40,
           "critical": 50, "fatal": 50}
# Each worker's context (task id, session id), merged into every line it logs.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "oxi_log_context", default=MappingProxyType({}))


class _Settings:
    def __init__(self, level: str, stream: TextIO | None, json_lines: bool | None) -> None:
        self.level = level
        self.threshold = logging_level(level)
        self.stream = stream
        self.json_lines = json_lines


_settings: _Settings | None = None  # the last configure(); None: structlog's own defaults
_applied: _Settings | None = None  # what structlog is configured with


def logging_level(level: str) -> int:
    """The number of a level name (``info`` -> 20); an unknown name is a clear error."""
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; expected one of "
                         f"{', '.join(sorted(set(_LEVELS) - {'warn', 'fatal', 'exception'}))}"
                         ) from None


def bind_contextvars(**values: Any) -> None:
    """Add ``values`` to every line logged from this context on (an asyncio task, a thread
    started from it): a worker binds its task id once."""
    _context.set({**_context.get(), **values})


def _merge_context(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in _context.get().items():
        event_dict.setdefault(key, value)
    return event_dict


def configure(
    *, level: str = "info", stream: TextIO | None = None, json_lines: bool | None = None
) -> None:
    """Console output when the stream is a terminal, JSON lines otherwise (services, CI).

    Applied when the first line is logged (at once if structlog is already in use)."""
    global _settings
    _settings = _Settings(level, stream, json_lines)
    if "structlog" in sys.modules:
        _apply(_settings)


def prepare() -> None:
    """Import and configure structlog now (~150 ms: it imports rich and asyncio), for a
    long-running process whose first line would otherwise pay it at a busy moment (`oxi
    saturate`: the first agent's result, while the next one waits to start)."""
    import structlog  # noqa: F401

    if _settings is not None and _applied is not _settings:
        _apply(_settings)


def _apply(settings: _Settings) -> None:
    global _applied
    import structlog

    out = settings.stream if settings.stream is not None else sys.stderr
    as_json = not out.isatty() if settings.json_lines is None else settings.json_lines
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: Iterable[Any] = (
        structlog.contextvars.merge_contextvars,
        _merge_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
        renderer,
        _redact_rendered(as_json),
    )
    structlog.configure(
        processors=list(processors),
        wrapper_class=structlog.make_filtering_bound_logger(settings.threshold),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _applied = settings


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


class _Logger:
    """What get_logger() returns: structlog's logger, imported and configured on the first line
    that passes the configured level (lines below it cost nothing and import nothing)."""

    def __init__(self, name: str, bound: Mapping[str, Any] | None = None) -> None:
        self._name = name
        self._bound = dict(bound or {})

    def bind(self, **values: Any) -> _Logger:
        return _Logger(self._name, {**self._bound, **values})

    def _real(self) -> Any:
        import structlog

        if _settings is not None and _applied is not _settings:
            _apply(_settings)
        logger = structlog.get_logger(self._name)
        return logger.bind(**self._bound) if self._bound else logger

    def __getattr__(self, method: str) -> Any:
        settings = _settings
        rank = _LEVELS.get(method)
        if settings is not None and rank is not None and rank < settings.threshold:
            return _noop
        return getattr(self._real(), method)


def get_logger(name: str = "oxi") -> Any:
    return _Logger(name)
