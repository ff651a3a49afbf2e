"""The publications this source reads, one parser each, so a layout change breaks only one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from oxi_core.models import Candidate
    from oxi_newsletter.http import Fetcher
    from oxi_newsletter.source import NewsletterSource


@attrs.frozen
class Scan:
    """One fetch of one publication: what its parser needs."""

    source: str  # "newsletter:<key>", the Candidates' source and the failures' name
    base_url: str  # where to fetch (the public site, or a test server)
    since: datetime
    fetcher: Fetcher
    config: NewsletterSource


@attrs.frozen
class Publication:
    key: str
    name: str
    public_url: str  # the site's own address: identifiers and links use it
    read: Callable[[Scan], list[Candidate]]
    reads_mail: bool = False  # may read the operator's mailbox instead of the web


def _registry() -> Mapping[str, Publication]:
    from oxi_newsletter.publications import alphasignal, bens_bites, latent_space

    return {p.key: p for p in (latent_space.PUBLICATION, bens_bites.PUBLICATION,
                               alphasignal.PUBLICATION)}


PUBLICATION_KEYS = ("latent_space", "bens_bites", "alphasignal")


def publication(key: str) -> Publication:
    return _registry()[key]
