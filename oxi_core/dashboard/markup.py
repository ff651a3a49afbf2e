"""HTML built so that text is escaped unless it is already markup: the page shows what agents
and roadmap items wrote (titles, reasons, transcripts), and none of it may become markup."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any


class Markup(str):
    """HTML made by this module: inserted as it is. Every other value is escaped."""

    __slots__ = ()


def esc(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    return Markup(sep.join(esc(part) for part in parts if part is not None))


def _attribute(name: str) -> str:
    return name.rstrip("_").replace("_", "-")


def el(tag: str, *children: Any, **attributes: Any) -> Markup:
    """``<tag attributes>children</tag>``: ``class_`` -> class, ``data_since`` -> data-since,
    True -> a bare attribute, None or False -> left out; children that are None are skipped."""
    attrs = "".join(
        f" {_attribute(name)}" if value is True else f' {_attribute(name)}="{esc(value)}"'
        for name, value in attributes.items() if value is not None and value is not False)
    if tag in VOID:
        return Markup(f"<{tag}{attrs}>")
    return Markup(f"<{tag}{attrs}>{join(children)}</{tag}>")


VOID = frozenset({"meta", "link", "input", "br", "hr", "img"})


def clip(text: Any, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    value = "" if text is None else str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value) - limit:,} more characters)"
