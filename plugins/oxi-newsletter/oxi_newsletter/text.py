"""HTML -> the plain text a Candidate carries (selectolax), and the few page facts we read."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser

SUMMARY_CHARS = 600
_SPACE = re.compile(r"\s+")
# Substack ends a paid post's feed preview with a paragraph holding only this link.
_READ_MORE = re.compile(r"<p>\s*<a\b[^>]*>\s*Read more\s*</a>\s*</p>\s*$", re.IGNORECASE)


def parse_html(html: str) -> LexborHTMLParser:
    from selectolax.lexbor import LexborHTMLParser

    return LexborHTMLParser(html)


def html_text(html: str) -> str:
    """The visible text of an HTML fragment or page, whitespace collapsed."""
    if not html.strip():
        return ""
    tree = parse_html(html)
    for node in tree.css("script, style, noscript"):
        node.decompose()
    root = tree.body or tree.root
    return clean(root.text(separator=" ")) if root is not None else ""


def clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def excerpt(text: str, limit: int = SUMMARY_CHARS) -> str:
    """At most ``limit`` characters, cut at a word."""
    text = clean(text)
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def is_paid_preview(html: str) -> bool:
    return bool(_READ_MORE.search(html))


def without_read_more(html: str) -> str:
    return _READ_MORE.sub("", html)


def meta(tree: LexborHTMLParser, *names: str) -> str:
    """The first non-empty ``<meta name|property=NAME content=...>`` of ``names``."""
    for name in names:
        for selector in (f'meta[name="{name}"]', f'meta[property="{name}"]'):
            node = tree.css_first(selector)
            content = node.attributes.get("content") if node is not None else None
            if content and content.strip():
                return clean(content)
    return ""
