"""Ben's Bites (www.bensbites.com), a Substack again after a beehiiv era: one issue a few
times a week, an intro and then sections ("🌐 What I'm consuming", "⚙️ Tools and demos",
"🥣 Dev dish", "💰 Who got that bag?", "🙋 How do I…", "🍦 Afters").

Each issue is one candidate; the section headings found in its HTML go to
``metadata.sections`` (and the tools section's items to ``metadata.tools``), so the judge
sees what an issue covers.
"""

from __future__ import annotations

from typing import Any

from oxi_core.models import Candidate
from oxi_newsletter import substack
from oxi_newsletter.publications import Publication, Scan
from oxi_newsletter.text import clean, parse_html, without_read_more

NAME = "Ben's Bites"
TOOLS_SECTION = "tools and demos"


def sections(html: str) -> tuple[list[str], list[str]]:
    """The issue's section headings, and the "Name - blurb" lines under Tools and demos."""
    if not html:
        return [], []
    tree = parse_html(without_read_more(html))
    headings: list[str] = []
    tools: list[str] = []
    in_tools = False
    for node in tree.css("h1, h2, h3, h4, p, li"):
        text = clean(node.text(separator=" "))
        if node.tag in ("h1", "h2", "h3", "h4"):
            if text:
                headings.append(text)
            in_tools = TOOLS_SECTION in text.casefold()
        elif in_tools and node.tag == "li" and " - " in text:
            tools.append(text)
    return headings, tools


def read(scan: Scan) -> list[Candidate]:
    posts = substack.read(scan.fetcher, scan.base_url, scan.since,
                          public_url=PUBLICATION.public_url, archive=scan.config.archive,
                          archive_limit=scan.config.archive_limit,
                          archive_pages=scan.config.archive_pages)
    found = []
    for post in posts:
        headings, tools = sections(post.content_html)
        extra: dict[str, Any] = {"sections": headings} if headings else {}
        if tools:
            extra["tools"] = tools
        found.append(substack.candidate(post, source=scan.source, publication=NAME,
                                        kind="digest", **extra))
    return found


PUBLICATION = Publication("bens_bites", NAME, "https://www.bensbites.com", read)
