"""oxi's newsletter source: ``[sources.NAME] type = "newsletter"``, the publication by kwargs."""

from __future__ import annotations

__all__ = ["NewsletterSource"]


def __getattr__(name: str) -> object:
    # The source (httpx, feedparser, selectolax) loads only when used: `oxi --help` imports
    # this package.
    if name == "NewsletterSource":
        from oxi_newsletter.source import NewsletterSource

        return NewsletterSource
    raise AttributeError(name)
