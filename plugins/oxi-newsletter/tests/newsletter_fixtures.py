"""Fixture files, the archive's URL shape, a plugin context, and the Latent Space site."""

from __future__ import annotations

from pathlib import Path

from oxi_newsletter.testing import Site

from oxi_core.policy import RepoPaths

FIXTURES = Path(__file__).parent / "fixtures"
RSS = "application/rss+xml; charset=utf-8"
JSON = "application/json; charset=utf-8"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def archive_path(offset: int, limit: int) -> str:
    return f"/api/v1/archive?sort=new&search=&offset={offset}&limit={limit}"


class Context:
    """What oxi hands a plugin's bind(): the repository's paths (the state folder is real)."""

    def __init__(self, root: Path) -> None:
        self.paths = RepoPaths.under(root)
        self.config_dir = root


def serve_latent_space(site: Site, prefix: str = "") -> None:
    site.put(f"{prefix}/feed", fixture("latent_space_feed.xml"), content_type=RSS)
    site.put(prefix + archive_path(0, 2), fixture("latent_space_archive_offset0.json"),
             content_type=JSON)
    site.put(prefix + archive_path(2, 2), fixture("latent_space_archive_offset2.json"),
             content_type=JSON)
    site.put(prefix + archive_path(4, 2), "[]", content_type=JSON)
    site.put(f"{prefix}/p/harness-eng", fixture("latent_space_post_harness_eng.html"))
