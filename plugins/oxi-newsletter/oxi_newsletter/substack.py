"""Substack publications: the RSS feed (feedparser), the archive JSON, and post pages.

The feed (``{base}/feed``) holds the latest 20 posts with their full HTML, or, for paid posts,
a preview ending in a "Read more" link. The archive (``{base}/api/v1/archive?sort=new&offset=
N&limit=M``, a bare JSON array) reaches further back and says what the feed does not:
``audience`` (paid or free), ``type`` (newsletter, podcast), ``wordcount``. A post's page
(``{base}/p/{slug}``) is read only when neither gave a word of summary. Both Substack
publications read through here; what each makes of a post is its own parser's business.
"""

from __future__ import annotations

import calendar
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import attrs

from oxi_core.errors import SourceError
from oxi_core.models import Candidate
from oxi_newsletter.errors import layout_changed
from oxi_newsletter.http import Fetcher
from oxi_newsletter.text import excerpt, html_text, is_paid_preview, meta, parse_html
from oxi_newsletter.text import without_read_more as strip_read_more

SIGNAL_KIND = "newsletter_post"  # every publication's: the scan dedups on kind and target
PAID_AUDIENCES = frozenset({"only_paid", "founding"})
# feedparser's complaints that do not make a feed unreadable.
_BENIGN_FEED_ERRORS = frozenset({"CharacterEncodingOverride", "NonXMLContentType"})


@attrs.frozen
class SubstackPost:
    url: str  # the canonical URL: the Candidate's identifier
    slug: str
    title: str
    subtitle: str = ""
    content_html: str = ""  # the feed's content:encoded (full, or the paid preview)
    published_at: datetime | None = None
    authors: tuple[str, ...] = ()
    audience: str = ""  # from the archive: everyone, only_paid, founding, only_free
    post_type: str = ""  # from the archive: newsletter, podcast, thread, video
    post_id: str = ""
    wordcount: int | None = None
    body_text: str = ""  # the archive's truncated_body_text
    page_description: str = ""  # the post page's description, when nothing else had text

    @property
    def preview(self) -> bool:
        """A paid post whose feed and archive carry only its opening."""
        return self.audience in PAID_AUDIENCES or is_paid_preview(self.content_html)

    def text(self) -> str:
        """The post's words that oxi has: the feed's HTML, else the archive's, else the page's."""
        if self.content_html:
            return html_text(strip_read_more(self.content_html))
        return self.body_text or self.page_description


def read(fetcher: Fetcher, base_url: str, since: datetime, *, public_url: str, archive: bool,
         archive_limit: int, archive_pages: int) -> list[SubstackPost]:
    """The publication's posts newer than ``since``, newest first. ``public_url`` names posts
    the archive gives no canonical URL (``{public_url}/p/{slug}``)."""
    posts = read_feed(fetcher, f"{base_url}/feed")
    if archive:
        posts = merge(posts, read_archive(fetcher, base_url, since, limit=archive_limit,
                                          pages=archive_pages))
    fresh = [post if post.url else attrs.evolve(post, url=f"{public_url}/p/{post.slug}")
             for post in posts if post.published_at is None or post.published_at > since]
    return [_with_page_description(fetcher, base_url, post)
            if not (post.subtitle or post.text()) else post for post in fresh]


def read_feed(fetcher: Fetcher, url: str) -> list[SubstackPost]:
    import feedparser

    page = fetcher.get(url)
    # A stream, never the bytes themselves: feedparser opens a path or URL it is handed, and a
    # body is untrusted data.
    parsed = feedparser.parse(io.BytesIO(page.body))
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and type(problem).__name__ not in _BENIGN_FEED_ERRORS:
        raise SourceError(f"the feed at {url} is malformed: {problem}", source=fetcher.source,
                          details={"url": url, "body_head": page.text()[:200]},
                          hint="a truncated or broken feed is not read at all, so no post is "
                               "lost quietly; the next scan tries again")
    if not parsed.get("version"):
        raise layout_changed(fetcher.source, f"{url} is not an RSS or Atom feed (it starts "
                             f"{page.text()[:60]!r})", url=url)
    return [_feed_post(entry, number, url, fetcher.source)
            for number, entry in enumerate(parsed.get("entries") or [], start=1)]


def _feed_post(entry: Mapping[str, Any], number: int, url: str, source: str) -> SubstackPost:
    link, title = entry.get("link"), entry.get("title")
    if not link or not title:
        raise layout_changed(source, f"item {number} of the feed at {url} has no "
                             f"{'link' if not link else 'title'}", url=url, item=number)
    contents = entry.get("content") or []
    content = str(contents[0].get("value") or "") if contents else ""
    summary = str(entry.get("summary") or "")
    # feedparser copies content:encoded into `summary` when there is no <description>.
    subtitle = "" if summary == content else html_text(summary)
    moment = entry.get("published_parsed") or entry.get("updated_parsed")
    return SubstackPost(
        url=str(link), slug=_slug(str(link)), title=html_text(str(title)), subtitle=subtitle,
        content_html=content,
        published_at=datetime.fromtimestamp(calendar.timegm(moment), UTC) if moment else None,
        authors=(str(entry["author"]),) if entry.get("author") else (),
        post_id=str(entry.get("id") or link),
    )


def read_archive(fetcher: Fetcher, base_url: str, since: datetime, *, limit: int,
                 pages: int) -> list[SubstackPost]:
    """Archive pages, newest first, until one reaches back past ``since`` or comes back empty."""
    posts: list[SubstackPost] = []
    for page_number in range(pages):
        url = (f"{base_url}/api/v1/archive?sort=new&search=&offset={page_number * limit}"
               f"&limit={limit}")
        page = fetcher.get(url)
        try:
            items = json.loads(page.body)
        except ValueError as error:
            raise layout_changed(fetcher.source, f"the archive at {url} is not JSON ({error})",
                                 url=url, body_head=page.text()[:200]) from error
        if not isinstance(items, list):
            raise layout_changed(fetcher.source, f"the archive at {url} answered a JSON "
                                 f"{type(items).__name__} where a list of posts was expected",
                                 url=url)
        if not items:
            break
        found = [_archive_post(item, number, url, fetcher.source)
                 for number, item in enumerate(items, start=1)]
        posts.extend(found)
        dated = [post.published_at for post in found if post.published_at is not None]
        if dated and min(dated) <= since:
            break
    return posts


_ARCHIVE_KEYS = ("title", "slug", "post_date")


def _archive_post(item: Any, number: int, url: str, source: str) -> SubstackPost:
    missing = [key for key in _ARCHIVE_KEYS if not isinstance(item, dict) or not item.get(key)]
    if missing:
        raise layout_changed(source, f"post {number} of the archive at {url} has no "
                             f"{', '.join(missing)}", url=url, item=number)
    bylines = item.get("publishedBylines") or []
    wordcount = item.get("wordcount")
    slug = str(item["slug"])
    return SubstackPost(
        url=str(item.get("canonical_url") or ""), slug=slug, title=str(item["title"]),
        subtitle=html_text(str(item.get("subtitle") or item.get("description") or "")),
        published_at=_timestamp(str(item["post_date"]), url, source),
        authors=tuple(str(b["name"]) for b in bylines if isinstance(b, dict) and b.get("name")),
        audience=str(item.get("audience") or ""),
        post_type=str(item.get("type") or ""),
        post_id=str(item.get("id") or ""),
        wordcount=wordcount if isinstance(wordcount, int) else None,
        body_text=html_text(str(item.get("truncated_body_text") or "")),
    )


def merge(feed: Iterable[SubstackPost], archive: Iterable[SubstackPost]) -> list[SubstackPost]:
    """One post per slug: the feed's words, the archive's facts (audience, type, id), newest
    first."""
    merged: dict[str, SubstackPost] = {post.slug: post for post in feed}
    for post in archive:
        seen = merged.get(post.slug)
        if seen is None:
            merged[post.slug] = post
            continue
        merged[post.slug] = attrs.evolve(
            seen, url=seen.url or post.url, subtitle=seen.subtitle or post.subtitle,
            published_at=seen.published_at or post.published_at,
            authors=post.authors or seen.authors, audience=post.audience,
            post_type=post.post_type, post_id=post.post_id or seen.post_id,
            wordcount=post.wordcount, body_text=post.body_text,
        )
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(merged.values(), key=lambda post: post.published_at or epoch, reverse=True)


def _with_page_description(fetcher: Fetcher, base_url: str, post: SubstackPost) -> SubstackPost:
    """What neither the feed nor the archive said: the post page's own description."""
    page = fetcher.get(f"{base_url}/p/{post.slug}")
    tree = parse_html(page.text())
    return attrs.evolve(post, page_description=meta(tree, "description", "og:description",
                                                    "twitter:description"))


def _slug(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    return path.rsplit("/", 1)[-1] if "/p/" in path else path or url


def _timestamp(text: str, url: str, source: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise layout_changed(source, f"the archive at {url} dates a post {text!r}, not ISO "
                             "8601", url=url) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def summary(post: SubstackPost) -> str:
    """The subtitle, then the opening of the post (for a paid post: all of its preview)."""
    body = excerpt(post.text())
    if post.subtitle and body.startswith(post.subtitle):
        return body
    return "\n\n".join(part for part in (post.subtitle, body) if part)


def candidate(post: SubstackPost, *, source: str, publication: str, kind: str,
              **extra: Any) -> Candidate:
    """A post as a Candidate, identified by its canonical URL; ``kind`` is the publication's
    own word for it (``metadata.kind``). A paid post is kept as the preview it is
    (``metadata.preview``), never an error."""
    metadata: dict[str, Any] = {
        "publication": publication, "kind": kind,
        "author": post.authors[0] if post.authors else "",
        "authors": list(post.authors), "preview": post.preview, "slug": post.slug,
    }
    for key, value in (("audience", post.audience), ("type", post.post_type),
                       ("post_id", post.post_id), ("wordcount", post.wordcount)):
        if value:
            metadata[key] = value
    metadata.update(extra)
    return Candidate(source=source, identifier=post.url, title=post.title,
                     summary=summary(post), url=post.url, published_at=post.published_at,
                     signal_kind=SIGNAL_KIND, metadata=metadata)
