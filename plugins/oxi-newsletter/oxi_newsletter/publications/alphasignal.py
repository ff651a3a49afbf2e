"""AlphaSignal (alphasignal.ai): no public feed or archive. Two ways in, whichever the
operator configures:

- the web (default): the story index page (``index_path``, ``/news``) links per-story pages
  ``/news/<slug>``; each page's title (``"... | AlphaSignal"``), description and publication
  time make one candidate;
- mail (``mailbox`` set): the issues the operator's mail client files into a Maildir or mbox,
  from ``news@alphasignal.ai``. Each story link in an issue (``alphasignal.ai/news/<slug>``,
  with its link text as title) is one candidate, identified by the same URL the web reading
  gives it; an issue without such links is one candidate of its own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from oxi_core.models import Candidate
from oxi_newsletter.errors import layout_changed
from oxi_newsletter.mail import MailIssue, read_issues
from oxi_newsletter.publications import Publication, Scan
from oxi_newsletter.substack import SIGNAL_KIND
from oxi_newsletter.text import clean, excerpt, html_text, meta, parse_html

NAME = "AlphaSignal"
PUBLIC_URL = "https://alphasignal.ai"
_STORY_PATH = re.compile(r"^/news/(?P<slug>[A-Za-z0-9][A-Za-z0-9-]*)/?$")
_TITLE_SUFFIX = re.compile(r"\s*\|\s*AlphaSignal\s*$", re.IGNORECASE)


def story_url(slug: str) -> str:
    return f"{PUBLIC_URL}/news/{slug}"


def story_slug(href: str, base_url: str) -> str | None:
    """The slug of a link to a story page on AlphaSignal (or on the configured base URL)."""
    absolute = urlsplit(urljoin(base_url + "/", href))
    hosts = {urlsplit(base_url).netloc, "alphasignal.ai", "www.alphasignal.ai"}
    if absolute.netloc not in hosts:
        return None
    found = _STORY_PATH.match(absolute.path)
    return found.group("slug") if found else None


def read(scan: Scan) -> list[Candidate]:
    if scan.config.mailbox is not None:
        issues = read_issues(scan.config.mailbox, sender=scan.config.sender, since=scan.since,
                             source=scan.source)
        return [c for issue in issues for c in _issue_candidates(issue, scan)]
    return _web_candidates(scan)


# -- the web ------------------------------------------------------------------------------


def _web_candidates(scan: Scan) -> list[Candidate]:
    index_url = scan.base_url + scan.config.index_path
    tree = parse_html(scan.fetcher.get(index_url).text())
    slugs: list[str] = []
    for anchor in tree.css("a[href]"):
        slug = story_slug(anchor.attributes.get("href") or "", scan.base_url)
        if slug and slug not in slugs:
            slugs.append(slug)
    if not slugs:
        raise layout_changed(scan.source, f"the index {index_url} links no story page "
                             "(/news/<slug>)", url=index_url)
    found = []
    for slug in slugs[: scan.config.max_stories]:
        story = _story(scan, slug)
        if story.published_at is None or story.published_at > scan.since:
            found.append(story)
    return found


def _story(scan: Scan, slug: str) -> Candidate:
    url = f"{scan.base_url}/news/{slug}"
    tree = parse_html(scan.fetcher.get(url).text())
    title_node = tree.css_first("title")
    title = meta(tree, "og:title") or (clean(title_node.text()) if title_node else "")
    title = _TITLE_SUFFIX.sub("", title)
    if not title:
        raise layout_changed(scan.source, f"the story page {url} has no title (neither "
                             "og:title nor <title>)", url=url)
    body = tree.css_first("article") or tree.css_first("main")
    summary = meta(tree, "description", "og:description") or (
        excerpt(clean(body.text(separator=" "))) if body is not None else "")
    return Candidate(
        source=scan.source, identifier=story_url(slug), title=title, summary=summary,
        url=story_url(slug), published_at=_published(tree), signal_kind=SIGNAL_KIND,
        metadata={"publication": NAME, "kind": "story", "slug": slug, "via": "web"},
    )


def _published(tree: Any) -> datetime | None:
    text = meta(tree, "article:published_time", "og:published_time", "date")
    if not text:
        node = tree.css_first("time[datetime]")
        text = node.attributes.get("datetime") or "" if node is not None else ""
    try:
        moment = datetime.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- mail ---------------------------------------------------------------------------------


def _issue_candidates(issue: MailIssue, scan: Scan) -> list[Candidate]:
    metadata: dict[str, Any] = {"publication": NAME, "via": "mail", "issue": issue.subject,
                                "message_id": issue.message_id}
    stories: dict[str, str] = {}
    if issue.html:
        for anchor in parse_html(issue.html).css("a[href]"):
            slug = story_slug(anchor.attributes.get("href") or "", PUBLIC_URL)
            text = _TITLE_SUFFIX.sub("", clean(anchor.text(separator=" ")))
            # A story is often linked twice (an image, then its headline): keep the words.
            if slug and len(text) > len(stories.get(slug, "")):
                stories[slug] = text
    titled = {slug: title for slug, title in stories.items() if title}
    if titled:
        return [Candidate(source=scan.source, identifier=story_url(slug), title=title,
                          url=story_url(slug), published_at=issue.sent_at,
                          signal_kind=SIGNAL_KIND,
                          metadata={**metadata, "kind": "story", "slug": slug})
                for slug, title in titled.items()]
    text = issue.text or html_text(issue.html)
    identifier = issue.message_id or f"{NAME}:{issue.subject}:{issue.sent_at}"
    return [Candidate(source=scan.source, identifier=identifier,
                      title=issue.subject or "AlphaSignal issue", summary=excerpt(text),
                      published_at=issue.sent_at, signal_kind=SIGNAL_KIND,
                      metadata={**metadata, "kind": "issue"})]


PUBLICATION = Publication("alphasignal", NAME, PUBLIC_URL, read, reads_mail=True)
