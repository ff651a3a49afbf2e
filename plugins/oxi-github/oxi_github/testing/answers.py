"""What the loopback GitHub answers with: a status, a JSON body, headers; and GitHub's page of a
list with its `Link` header (`per_page` default 30, max 100; rel prev, next, last, first)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import attrs

PER_PAGE_DEFAULT = 30
PER_PAGE_MAX = 100


@attrs.define
class Answer:
    status: int
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = attrs.field(factory=dict)


def param(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def per_page(query: Mapping[str, list[str]]) -> int:
    return max(1, min(int(param(query, "per_page") or PER_PAGE_DEFAULT), PER_PAGE_MAX))


def page_number(query: Mapping[str, list[str]]) -> int:
    return max(1, int(param(query, "page") or 1))


def link_header(query: Mapping[str, list[str]], url: str, page: int, last: int) -> str:
    """GitHub's `Link` for ``page`` of ``last`` at ``url`` (the query's other parameters and
    ``per_page`` kept in every link, as GitHub does); empty when everything fits one page."""
    size = per_page(query)

    def link(number: int, rel: str) -> str:
        params = {k: v[0] for k, v in query.items() if k not in ("page", "per_page")}
        params.update({"per_page": str(size), "page": str(number)})
        return f'<{url}?{urlencode(params)}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(page - 1, "prev"))
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links.append(link(1, "first"))
    return ", ".join(links)


def paged(items: list[Any], query: Mapping[str, list[str]], url: str) -> Answer:
    """One page of ``items`` with its `Link` header."""
    size = per_page(query)
    page = page_number(query)
    last = max(1, math.ceil(len(items) / size))
    links = link_header(query, url, page, last)
    return Answer(200, items[(page - 1) * size: page * size], {"Link": links} if links else {})
