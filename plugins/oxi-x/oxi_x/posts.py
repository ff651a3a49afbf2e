"""The X tool's output -> posts: the X API v2 shape and a scraper's snscrape-style JSON lines.

The operator's tool is not ours, so both shapes seen in public are accepted: X API v2 responses
(``{data, includes.users, meta}``, one document or one per line, or a bare list of post
objects; the newer spec's ``note_post``/``referenced_posts`` names as well as ``note_tweet``/
``referenced_tweets``) and the dicts twscrape and snscrape print, one per line (``rawContent``,
``user.username``, ``date``, ``links``). Anything else is an error naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

# X post ids are snowflakes: milliseconds since this epoch, shifted left by 22 bits.
_SNOWFLAKE_EPOCH_MS = 1288834974657


class OutputError(ValueError):
    """The tool's output is not a shape this parser knows; the message says where."""


@attrs.frozen
class Link:
    url: str
    title: str = ""


@attrs.frozen
class Post:
    id: str
    text: str
    author: str  # the handle without "@", or "" when the output does not say
    author_name: str = ""
    created_at: datetime | None = None
    links: tuple[Link, ...] = ()
    metrics: Mapping[str, int] = attrs.field(factory=dict)
    referenced: str = ""  # "retweeted", "quoted", "replied_to" or ""
    shape: str = "x_api_v2"


def parse_output(text: str) -> list[Post]:
    """Every post in the tool's stdout. Empty output is no posts."""
    if not text.strip():
        return []
    try:
        documents: list[tuple[int, Any]] = [(1, json.loads(text))]
    except json.JSONDecodeError:
        documents = list(_json_lines(text))
    posts: list[Post] = []
    for line, document in documents:
        posts.extend(_posts_of(document, line))
    return posts


def _json_lines(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise OutputError(f"line {number} is not JSON ({error.msg} at column "
                              f"{error.colno}): {line[:80]!r}") from error


def _posts_of(document: Any, line: int) -> list[Post]:
    if isinstance(document, list):
        return [_post(item, {}, line) for item in document]
    if not isinstance(document, dict):
        raise OutputError(f"line {line}: expected a JSON object or list, got "
                          f"{type(document).__name__}")
    if "data" in document or "errors" in document or "meta" in document:
        return _v2_response(document, line)
    return [_post(document, {}, line)]


def _v2_response(document: Mapping[str, Any], line: int) -> list[Post]:
    data = document.get("data")
    if data is None:
        errors = [e for e in document.get("errors") or [] if isinstance(e, dict)]
        if errors:
            what = errors[0].get("detail") or errors[0].get("title") or errors[0]
            raise OutputError(f"line {line}: the X API answered an error: {what}")
        return []  # a search that found nothing: meta.result_count 0 and no data
    users = {str(user.get("id")): user
             for user in (document.get("includes") or {}).get("users") or []
             if isinstance(user, dict)}
    items = data if isinstance(data, list) else [data]
    return [_post(item, users, line) for item in items]


def _post(item: Any, users: Mapping[str, Mapping[str, Any]], line: int) -> Post:
    if not isinstance(item, dict):
        raise OutputError(f"line {line}: expected a post object, got {type(item).__name__}")
    if "rawContent" in item or "user" in item:
        return _scraper_post(item, line)
    if "id" in item and "text" in item:
        return _v2_post(item, users)
    keys = ", ".join(sorted(item)[:8]) or "none"
    raise OutputError(f"line {line}: neither an X API v2 post (id, text) nor a scraper post "
                      f"(rawContent, user); keys: {keys}")


def _v2_post(item: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]]) -> Post:
    note = item.get("note_tweet") or item.get("note_post") or {}
    text = str(note.get("text") or item["text"])
    entities = note.get("entities") or item.get("entities") or {}
    links = tuple(
        Link(str(url.get("unwound_url") or url.get("expanded_url") or url.get("url")),
             str(url.get("title") or ""))
        for url in entities.get("urls") or [] if isinstance(url, dict)
    )
    for url in entities.get("urls") or []:
        if isinstance(url, dict) and url.get("url") and url.get("expanded_url"):
            text = text.replace(str(url["url"]), str(url["expanded_url"]))
    user = users.get(str(item.get("author_id")), {})
    metrics = item.get("public_metrics") or {}
    referenced = item.get("referenced_tweets") or item.get("referenced_posts") or []
    return Post(
        id=str(item["id"]),
        text=text,
        author=str(user.get("username") or item.get("username") or ""),
        author_name=str(user.get("name") or ""),
        created_at=_timestamp(item.get("created_at"), str(item["id"])),
        links=links,
        metrics={name: int(metrics[key]) for name, key in _V2_METRICS if key in metrics},
        referenced=str(referenced[0].get("type", "")) if referenced else "",
        shape="x_api_v2",
    )


_V2_METRICS = (("likes", "like_count"), ("reposts", "retweet_count"),
               ("replies", "reply_count"), ("quotes", "quote_count"),
               ("views", "impression_count"))
_SCRAPER_METRICS = (("likes", "likeCount"), ("reposts", "retweetCount"),
                    ("replies", "replyCount"), ("quotes", "quoteCount"), ("views", "viewCount"))


def _scraper_post(item: Mapping[str, Any], line: int) -> Post:
    post_id = item.get("id_str") or item.get("id")
    if post_id is None:
        raise OutputError(f"line {line}: a scraper post without an id")
    text = str(item.get("rawContent") or item.get("content") or "")
    links = []
    for link in item.get("links") or []:
        if isinstance(link, dict) and link.get("url"):
            links.append(Link(str(link["url"])))
            if link.get("tcourl"):
                text = text.replace(str(link["tcourl"]), str(link["url"]))
    card = item.get("card") or {}
    if links and isinstance(card, dict) and card.get("title"):
        links[0] = Link(links[0].url, str(card["title"]))
    user = item.get("user") or {}
    referenced = ("retweeted" if item.get("retweetedTweet") else
                  "quoted" if item.get("quotedTweet") else
                  "replied_to" if item.get("inReplyToTweetId") else "")
    return Post(
        id=str(post_id),
        text=text,
        author=str(user.get("username") or ""),
        author_name=str(user.get("displayname") or ""),
        created_at=_timestamp(item.get("date"), str(post_id)),
        links=tuple(links),
        metrics={name: int(item[key]) for name, key in _SCRAPER_METRICS
                 if isinstance(item.get(key), int)},
        referenced=referenced,
        shape="scraper",
    )


def _timestamp(value: Any, post_id: str) -> datetime | None:
    """ISO 8601 (v2's ``...T10:30:00.000Z``, the scraper's ``... 21:59:10+00:00``); when the
    tool left it out, the time the post id itself encodes."""
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if post_id.isdigit() and int(post_id) >> 22:
        return datetime.fromtimestamp(((int(post_id) >> 22) + _SNOWFLAKE_EPOCH_MS) / 1000, UTC)
    return None

