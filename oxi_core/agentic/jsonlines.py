"""Decoding an agent's stdout, one JSON object per line, as fast as the stdlib allows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# The C scanner behind json.loads, called directly: json.loads adds a Python-level decode()
# and two whitespace regex matches per line, a third of the cost on short event lines.
_scan_once: Callable[[str, int], tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]


def parse_line(line: str) -> dict[str, Any] | None:
    """One stdout line as a JSON object, or None when it is not one (as json.loads decides)."""
    if not line.startswith("{"):
        return None
    try:
        value, end = _scan_once(line, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(line) and line[end:].strip(" \t\n\r"):
        return None  # trailing data: json.loads would refuse it too
    return value if isinstance(value, dict) else None
