"""Latent Space (www.latent.space), a Substack: essays, podcast episodes and the daily AINews.

AINews posts have slugs ``ainews-<topic>-NNN`` and titles starting "[AINews]" or "AINews:";
many are paid-only and reach the feed as previews.
"""

from __future__ import annotations

from oxi_core.models import Candidate
from oxi_newsletter import substack
from oxi_newsletter.publications import Publication, Scan

NAME = "Latent Space"


def kind(post: substack.SubstackPost) -> str:
    if post.slug.startswith("ainews-") or post.title.lstrip("[").startswith("AINews"):
        return "ainews"
    if post.post_type == "podcast":
        return "podcast"
    return "essay"


def read(scan: Scan) -> list[Candidate]:
    posts = substack.read(scan.fetcher, scan.base_url, scan.since,
                          public_url=PUBLICATION.public_url, archive=scan.config.archive,
                          archive_limit=scan.config.archive_limit,
                          archive_pages=scan.config.archive_pages)
    return [substack.candidate(post, source=scan.source, publication=NAME,
                               kind=kind(post)) for post in posts]


PUBLICATION = Publication("latent_space", NAME, "https://www.latent.space", read)
