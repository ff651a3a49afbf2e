"""Entry points read straight from ``*.dist-info/entry_points.txt`` on sys.path.

``importlib.metadata`` costs ~30 ms to import and more to scan; oxi reads one group on every
start-up (``oxi --help`` included), so it reads the files itself. Same rules as importlib:
the first distribution of a name on sys.path wins.
"""

from __future__ import annotations

import os
import re
import sys
from importlib import import_module
from typing import Any, NamedTuple


class EntryPoint(NamedTuple):
    name: str
    value: str  # "package.module" or "package.module:attr"
    distribution: str
    version: str

    def load(self) -> Any:
        module_name, _, attrs = self.value.partition(":")
        target: Any = import_module(module_name.strip())
        for part in attrs.strip().split(".") if attrs.strip() else ():
            target = getattr(target, part)
        return target


def canonical(name: str) -> str:
    """A distribution name as packaging compares them: oxi_Foo.bar == oxi-foo-bar."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _metadata_name(dist_info: str, fallback: str) -> str:
    try:
        with open(os.path.join(dist_info, "METADATA"), encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Name:"):
                    return line[5:].strip()
                if not line.strip():
                    break
    except OSError:
        pass
    return fallback


def _section(text: str, group: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            inside = line == f"[{group}]"
            continue
        if inside and "=" in line:
            name, _, value = line.partition("=")
            found.append((name.strip(), value.strip()))
    return found


def entry_points(group: str) -> list[EntryPoint]:
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for base in sys.path:
        try:
            entries = sorted(os.scandir(base or "."), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not entry.name.endswith(".dist-info"):
                continue
            stem = entry.name[: -len(".dist-info")]
            raw_name, _, version = stem.partition("-")
            key = canonical(raw_name)
            if key in seen:
                continue
            seen.add(key)
            try:
                with open(os.path.join(entry.path, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            if f"[{group}]" not in text:
                continue
            distribution = _metadata_name(entry.path, raw_name)
            found.extend(EntryPoint(name, value, distribution, version or "unknown")
                         for name, value in _section(text, group))
    return found
