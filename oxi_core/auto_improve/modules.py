"""The modules that really exist: oxi_core's and every installed plugin's (pkgutil), so a
proposal naming a module that does not is caught whatever the judge said."""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Iterable

# Dotted names (oxi_core.engine.tick) and paths (oxi_core/engine/tick.py) of oxi packages.
_DOTTED = re.compile(r"(?<![\w./])(oxi_[a-z0-9_]*(?:\.[A-Za-z_]\w*)*)(?![\w/])")
_PATH = re.compile(r"(?<![\w/])(oxi_[a-z0-9_]*(?:/[A-Za-z_]\w*)*)(?:/__init__)?\.py\b")


def _walk(package: str) -> set[str]:
    try:
        module = importlib.import_module(package)
    except ImportError:
        return set()
    found = {package}
    path = getattr(module, "__path__", None)
    if path is not None:
        found |= {info.name for info in pkgutil.walk_packages(path, f"{package}.")}
    return found


@functools.cache
def real_modules() -> frozenset[str]:
    """oxi_core's modules and those of every installed oxi plugin (their top packages)."""
    from oxi_core.plugins import load_plugins

    packages = {"oxi_core"}
    for name in load_plugins().manager.list_name_plugin():
        module = getattr(name[1], "__name__", "")
        if module.startswith("oxi_"):
            packages.add(module.split(".")[0])
    return frozenset(name for package in sorted(packages) for name in _walk(package))


def named_modules(texts: Iterable[str]) -> set[str]:
    """The oxi modules the texts name, as dotted names."""
    found: set[str] = set()
    for text in texts:
        found |= {m.rstrip(".") for m in _DOTTED.findall(text)}
        found |= {m.replace("/", ".") for m in _PATH.findall(text)}
    return found


def fabricated(names: Iterable[str], real: frozenset[str] | None = None) -> list[str]:
    """The names that are neither a real module nor an attribute of one, sorted."""
    real = real_modules() if real is None else real
    missing = []
    for name in set(names):
        if name in real:
            continue
        parent, _, attribute = name.rpartition(".")
        if parent in real and _has_attribute(parent, attribute):
            continue
        missing.append(name)
    return sorted(missing)


def _has_attribute(module: str, attribute: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), attribute)
    except ImportError:
        return False
