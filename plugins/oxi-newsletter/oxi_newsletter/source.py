"""NewsletterSource: ``[sources.NAME] type = "newsletter"``, one publication per instance.

The publication's own parser (``publications/``) reads it; this class holds the kwargs, the
HTTP fetcher and its cache, and turns whatever goes wrong into one SourceError, so a broken
publication fails alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from oxi_core.errors import SourceError
from oxi_core.models import Candidate
from oxi_core.protocols import PluginContext
from oxi_newsletter.publications import PUBLICATION_KEYS, Scan, publication

CACHE_FOLDER = ("cache", "newsletter")  # under the repository's state folder (.oxi/)


def _known_publication(_instance: Any, _attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in PUBLICATION_KEYS:
        raise ValueError(f"publication {value!r} is not one this source reads; choose one of "
                         f"{', '.join(PUBLICATION_KEYS)}")


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _base_url(_instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"{attribute.name} must be an http(s) URL, got {value!r}")


@attrs.define
class NewsletterSource:
    # Which newsletter: its parser (latent-space, bens-bites, alphasignal).
    publication: str = attrs.field(validator=_known_publication)
    base_url: str | None = attrs.field(default=None, validator=_base_url)  # default: the site
    # Seconds a request may take.
    timeout_s: float = attrs.field(default=30.0, validator=_positive)
    archive: bool = True  # Substack: also read the archive JSON
    archive_limit: int = attrs.field(default=25, validator=_positive)  # posts per page
    archive_pages: int = attrs.field(default=4, validator=_positive)  # at most, per scan
    index_path: str = "/news"  # AlphaSignal on the web: the page linking the stories
    max_stories: int = attrs.field(default=20, validator=_positive)  # AlphaSignal on the web
    mailbox: Path | None = None  # AlphaSignal by mail: a Maildir folder or an mbox file
    sender: str = "alphasignal.ai"  # AlphaSignal by mail: part of the From of its issues
    cache_dir: Path | None = None  # default: .oxi/cache/newsletter once bound
    _state_dir: Path | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.mailbox is not None and not publication(self.publication).reads_mail:
            raise ValueError(f"mailbox is read only for alphasignal; {self.publication} is "
                             "read from its feed")

    def bind(self, context: PluginContext) -> None:
        self._state_dir = context.paths.state_dir

    @property
    def name(self) -> str:
        """The Candidates' ``source`` and the failures' name: ``newsletter:<publication>``."""
        return f"newsletter:{self.publication}"

    @property
    def http_cache(self) -> Path | None:
        if self.cache_dir is not None:
            return self.cache_dir
        return self._state_dir.joinpath(*CACHE_FOLDER) if self._state_dir else None

    def fetch(self, since: datetime) -> list[Candidate]:
        from oxi_newsletter.http import Fetcher

        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        chosen = publication(self.publication)
        base_url = (self.base_url or chosen.public_url).rstrip("/")
        with Fetcher(source=self.name, timeout_s=self.timeout_s,
                     cache_dir=self.http_cache) as fetcher:
            scan = Scan(self.name, base_url, since, fetcher, self)
            try:
                found = chosen.read(scan)
            except SourceError:
                raise
            except (LookupError, TypeError, ValueError, AttributeError) as error:
                # A layout this parser does not know surfaces as a missing key or a wrong type.
                raise SourceError(
                    f"the {chosen.name} parser failed: {type(error).__name__}: {error}",
                    source=self.name, details={"layout": True},
                    hint="the publication probably changed its layout; see the "
                         "oxi-newsletter README",
                ) from error
        return [c for c in found if c.published_at is None or c.published_at > since]
