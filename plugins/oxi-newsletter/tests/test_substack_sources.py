"""Latent Space and Ben's Bites (Substack): feed + archive + post pages from a loopback site."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from newsletter_fixtures import JSON, RSS, Context, archive_path, fixture, serve_latent_space
from oxi_newsletter.source import NewsletterSource
from oxi_newsletter.testing import Site

from oxi_core.errors import SourceError
from oxi_core.protocols import Source

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
AINEWS = "https://www.latent.space/p/ainews-not-much-happened-today-173"
COGNITION = "https://www.latent.space/p/cognition"
HARNESS = "https://www.latent.space/p/harness-eng"


def latent_space(site: Site, context: Context | None = None, **kwargs: object) -> NewsletterSource:
    source = NewsletterSource(publication="latent_space", base_url=site.base_url,
                              archive_limit=2, **kwargs)  # type: ignore[arg-type]
    if context is not None:
        source.bind(context)
    return source


def test_latent_space_reads_the_feed_the_archive_and_a_post_page_for_what_both_lack(
    site: Site,
) -> None:
    serve_latent_space(site)
    source = latent_space(site)
    assert isinstance(source, Source)
    found = source.fetch(SINCE)

    assert [c.identifier for c in found] == [AINEWS, COGNITION, HARNESS]  # newest first
    ainews, cognition, harness = found
    assert {c.source for c in found} == {"newsletter:latent_space"}

    # Paid: kept as the preview it is, without its "Read more" link.
    assert ainews.signal_kind == "newsletter_post"
    assert ainews.metadata["kind"] == "ainews"
    assert ainews.metadata["preview"] is True
    assert ainews.metadata["audience"] == "only_paid"
    assert ainews.summary == ("A quiet day in AI. The recap of Discords, Reddits and X for the "
                              "day, for paid subscribers.")
    assert ainews.published_at == datetime(2026, 5, 30, 5, 12, tzinfo=UTC)
    assert ainews.url == AINEWS

    # Free podcast post: subtitle, then the post's opening; the script in it is dropped.
    assert cognition.signal_kind == "newsletter_post"
    assert cognition.metadata["kind"] == "podcast"
    assert cognition.metadata["preview"] is False
    assert cognition.summary.startswith("Walden Yan (Cognition) and Cole Murray (OpenInspect)")
    assert "Listen now on YouTube" in cognition.summary
    assert "alert" not in cognition.summary
    assert cognition.metadata["author"] == "swyx"
    assert cognition.metadata["publication"] == "Latent Space"
    assert cognition.metadata["type"] == "podcast"
    assert cognition.metadata["post_id"] == "1730000002"

    # Only in the archive, without a word of summary: the post page's description fills in.
    assert harness.signal_kind == "newsletter_post"
    assert harness.metadata["kind"] == "essay"
    assert harness.summary.startswith("Move over, context engineering. Now it’s time for "
                                      "Harness engineering.")
    assert harness.metadata["wordcount"] == 7400

    assert site.paths() == ["/feed", archive_path(0, 2), archive_path(2, 2), archive_path(4, 2),
                            "/p/harness-eng"]


def test_archive_paging_stops_at_the_since_timestamp(site: Site) -> None:
    serve_latent_space(site)
    found = latent_space(site).fetch(datetime(2026, 5, 1, tzinfo=UTC))
    assert [c.identifier for c in found] == [AINEWS, COGNITION]
    # The second page reached back past since: no third page, no page for the older post.
    assert site.paths() == ["/feed", archive_path(0, 2), archive_path(2, 2)]


def test_a_second_scan_sends_conditional_gets_and_a_304_gives_the_same_items(
    site: Site, context: Context,
) -> None:
    serve_latent_space(site)
    source = latent_space(site, context)
    first = source.fetch(SINCE)
    assert (context.paths.state_dir / "cache" / "newsletter").is_dir()
    served = len(site.requests)

    second = latent_space(site, context).fetch(SINCE)  # a new instance: the state is on disk
    again = site.requests[served:]
    assert second == first
    assert {request.status for request in again} == {304}
    feed = site.resources["/feed"]
    assert again[0].headers["If-None-Match"] == feed.etag
    assert again[0].headers["If-Modified-Since"] == feed.last_modified

    # The feed changes: a full answer, and the new post.
    changed = fixture("latent_space_feed.xml").replace(b"A quiet day in AI.", b"A busy day.")
    site.put("/feed", changed, content_type=RSS)
    third = latent_space(site, context).fetch(SINCE)
    assert site.requests[-5].path == "/feed" and site.requests[-5].status == 200
    assert third[0].summary.startswith("A busy day.")


def test_last_modified_alone_also_makes_a_conditional_get(site: Site, context: Context) -> None:
    serve_latent_space(site)
    site.put("/feed", fixture("latent_space_feed.xml"), content_type=RSS, etag=False)
    latent_space(site, context, archive=False).fetch(SINCE)
    latent_space(site, context, archive=False).fetch(SINCE)
    feeds = [r for r in site.requests if r.path == "/feed"]
    assert "If-None-Match" not in feeds[1].headers
    assert feeds[1].headers["If-Modified-Since"] == site.resources["/feed"].last_modified
    assert [r.status for r in feeds] == [200, 304]


def test_a_response_without_validators_is_not_cached(site: Site, context: Context) -> None:
    serve_latent_space(site)
    site.put("/feed", fixture("latent_space_feed.xml"), content_type=RSS, etag=False,
             last_modified=False)
    for _ in range(2):
        latent_space(site, context, archive=False).fetch(SINCE)
    feeds = [r for r in site.requests if r.path == "/feed"]
    assert [r.status for r in feeds] == [200, 200]
    assert not {"If-None-Match", "If-Modified-Since"} & set(feeds[1].headers)


def test_without_a_bound_context_every_get_is_a_full_one(site: Site) -> None:
    serve_latent_space(site)
    for _ in range(2):
        latent_space(site, archive=False).fetch(SINCE)
    assert [r.status for r in site.requests if r.path == "/feed"] == [200, 200]


def test_a_damaged_cache_entry_is_ignored_and_rewritten(site: Site, context: Context) -> None:
    serve_latent_space(site)
    latent_space(site, context, archive=False).fetch(SINCE)
    cache = context.paths.state_dir / "cache" / "newsletter"
    for body in cache.glob("*.body"):
        body.write_bytes(b"<rss>half a feed")
    found = latent_space(site, context, archive=False).fetch(SINCE)
    assert len(found) == 2
    assert [r.status for r in site.requests if r.path == "/feed"] == [200, 200]


def test_redirects_are_followed(site: Site) -> None:
    serve_latent_space(site, prefix="/custom")
    site.redirect("/feed", site.url("/custom/feed"))
    found = NewsletterSource(publication="latent_space", base_url=site.base_url,
                             archive=False).fetch(SINCE)
    assert [c.identifier for c in found] == [AINEWS, COGNITION]


def test_a_truncated_feed_is_malformed_and_fails_the_scan(site: Site) -> None:
    serve_latent_space(site)
    whole = fixture("latent_space_feed.xml")
    site.put("/feed", whole[: len(whole) // 2], content_type=RSS)
    with pytest.raises(SourceError, match=r"the feed at .*/feed is malformed") as raised:
        latent_space(site).fetch(SINCE)
    assert raised.value.source == "newsletter:latent_space"
    assert raised.value.payload()["details"]["url"] == site.url("/feed")


def test_a_page_that_is_not_a_feed_is_a_layout_change(site: Site) -> None:
    serve_latent_space(site)
    site.put("/feed", "<html><body><h1>We moved!</h1></body></html>")
    with pytest.raises(SourceError, match="is not an RSS or Atom feed") as raised:
        latent_space(site).fetch(SINCE)
    assert raised.value.details["layout"] is True
    assert "changed its layout" in (raised.value.hint or "")


def test_a_feed_item_without_a_link_is_a_layout_change(site: Site) -> None:
    serve_latent_space(site)
    site.put("/feed", fixture("latent_space_feed.xml").replace(
        b"<link>https://www.latent.space/p/cognition</link>", b""), content_type=RSS)
    with pytest.raises(SourceError, match=r"item 2 of the feed at .* has no link"):
        latent_space(site).fetch(SINCE)


def test_a_500_fails_the_scan_with_the_status(site: Site) -> None:
    serve_latent_space(site)
    site.put("/feed", "upstream exploded", status=500)
    with pytest.raises(SourceError, match=r"GET .*/feed answered 500 Internal Server Error") as e:
        latent_space(site).fetch(SINCE)
    assert e.value.details["status"] == 500
    assert e.value.details["body_head"] == "upstream exploded"


def test_an_archive_that_fails_fails_the_scan_unless_the_archive_is_off(site: Site) -> None:
    serve_latent_space(site)
    site.put(archive_path(0, 2), "busy", status=503)
    with pytest.raises(SourceError, match="answered 503"):
        latent_space(site).fetch(SINCE)
    found = latent_space(site, archive=False).fetch(SINCE)
    assert [c.identifier for c in found] == [AINEWS, COGNITION]
    assert found[0].metadata["preview"] is True  # the feed's "Read more" says it, alone
    assert "audience" not in found[0].metadata


@pytest.mark.parametrize(("body", "says"), [
    ('{"posts": []}', "answered a JSON dict where a list of posts was expected"),
    ("<html>login</html>", "is not JSON"),
    ('[{"title": "A post", "post_date": "2026-05-30T05:12:00.000Z"}]', "post 1 of the archive "
     ".* has no slug"),
    ('[{"title": "A post", "slug": "a-post", "post_date": "yesterday"}]', "dates a post "
     "'yesterday', not ISO 8601"),
])
def test_an_archive_in_another_layout_fails_the_scan(site: Site, body: str, says: str) -> None:
    serve_latent_space(site)
    site.put(archive_path(0, 2), body, content_type=JSON)
    with pytest.raises(SourceError, match=says) as raised:
        latent_space(site).fetch(SINCE)
    assert raised.value.details["layout"] is True


def test_a_slow_site_times_out(site: Site) -> None:
    serve_latent_space(site)
    site.put("/feed", fixture("latent_space_feed.xml"), content_type=RSS, delay_s=30)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"GET .*/feed timed out after 0.5 s"):
        latent_space(site, timeout_s=0.5).fetch(SINCE)
    assert time.monotonic() - started < 20


def test_an_unreachable_site_fails_the_scan() -> None:
    with Site() as gone:
        base = gone.base_url
    with pytest.raises(SourceError, match="failed: ConnectError"):
        NewsletterSource(publication="latent_space", base_url=base, timeout_s=5).fetch(SINCE)


def test_one_publication_failing_leaves_the_others_whole(site: Site) -> None:
    """What the scan does with its sources: each fetch on its own, a failure recorded."""
    serve_latent_space(site, prefix="/ls")
    site.put("/ls/feed", "boom", status=500)
    site.put("/bb/feed", fixture("bens_bites_feed.xml"), content_type=RSS)
    sources = [
        NewsletterSource(publication="latent_space", base_url=site.url("/ls"), archive_limit=2),
        NewsletterSource(publication="bens_bites", base_url=site.url("/bb"), archive=False),
    ]
    found, failed = [], []
    for source in sources:
        try:
            found.extend(source.fetch(datetime(2025, 1, 1, tzinfo=UTC)))
        except SourceError as error:
            failed.append(error.payload())
    assert [f["source"] for f in failed] == ["newsletter:latent_space"]
    assert "answered 500" in failed[0]["reason"]
    assert failed[0]["exit_code"] is None
    assert {c.source for c in found} == {"newsletter:bens_bites"}
    assert len(found) == 2


def test_bens_bites_issues_with_their_sections_and_a_paid_preview(site: Site) -> None:
    site.put("/feed", fixture("bens_bites_feed.xml"), content_type=RSS)
    source = NewsletterSource(publication="bens_bites", base_url=site.base_url, archive=False)
    leaks, wrapper = source.fetch(datetime(2025, 10, 1, tzinfo=UTC))

    assert leaks.identifier == "https://www.bensbites.com/p/big-lab-leaks"
    assert leaks.metadata["preview"] is True
    assert leaks.summary == "Two labs leaked their own roadmaps this week."
    assert leaks.metadata["author"] == "Ben Tossell"

    assert wrapper.identifier == "https://www.bensbites.com/p/not-a-wrapper-anymore"
    assert wrapper.signal_kind == "newsletter_post"
    assert wrapper.metadata["kind"] == "digest"
    assert wrapper.metadata["publication"] == "Ben's Bites"
    assert wrapper.metadata["preview"] is False
    assert wrapper.published_at == datetime(2025, 10, 30, 13, 5, tzinfo=UTC)
    assert wrapper.summary.startswith("Cursor and Windsurf both shipped their in-house models.")
    assert wrapper.metadata["sections"] == ["🌐 What I’m consuming", "⚙️ Tools and demos",
                                            "🍦 Afters"]
    assert wrapper.metadata["tools"] == [
        "Superhuman Go - Grammarly is renaming itself to Superhuman (they acquired the email "
        "company a while ago) and launching an assistant that can connect to your email, docs, "
        "company data and of course fix your typos."]
    assert site.paths() == ["/feed"]

    # Only what is newer than since.
    assert [c.title for c in source.fetch(datetime(2026, 1, 1, tzinfo=UTC))] == ["Big lab leaks"]


def test_the_real_substack_feed_and_archive_shapes_parse(site: Site) -> None:
    """benn.substack's feed (cut where the stored copy was cut) and Astral Codex Ten's archive
    item, as captured: a Substack publication's shapes, whatever the publication."""
    site.put("/feed", fixture("substack_feed_benn_excerpt.xml"), content_type=RSS)
    real = json.loads(fixture("substack_archive_api_item.json"))["response_trimmed_to_one_item"]
    site.put(archive_path(0, 25), json.dumps(real), content_type=JSON)
    site.put(archive_path(25, 25), "[]", content_type=JSON)
    found = NewsletterSource(publication="latent_space", base_url=site.base_url).fetch(
        datetime(2026, 5, 1, tzinfo=UTC))
    assert [c.identifier for c in found] == [
        "https://www.astralcodexten.com/p/an-open-letter-to-steven-pinker-on",
        "https://benn.substack.com/p/what-will-startups-do-in-2030",
        "https://benn.substack.com/p/the-bonfire-of-our-vanities",
    ]
    acx, startups, bonfire = found
    assert acx.metadata["audience"] == "everyone"
    assert acx.metadata["wordcount"] == 10536
    assert acx.metadata["author"] == "Scott Alexander"
    assert acx.summary == "…"  # the prober's own trimming of the subtitle
    assert startups.summary == "Every era needs its everymen."
    assert startups.metadata["author"] == "Benn Stancil"
    assert startups.published_at == datetime(2026, 6, 12, 20, 22, 23, tzinfo=UTC)
    assert bonfire.summary == "This too shall pass."


def test_the_cache_lives_under_the_state_folder_or_where_configured(
    tmp_path: Path, context: Context,
) -> None:
    source = NewsletterSource(publication="latent_space")
    assert source.http_cache is None
    source.bind(context)
    assert source.http_cache == context.paths.state_dir / "cache" / "newsletter"
    assert NewsletterSource(publication="latent_space", cache_dir=tmp_path).http_cache == tmp_path


def test_the_constructed_fixtures_carry_the_real_items() -> None:
    """Titles and links in the constructed feeds and archive are the real ones (fixtures/README)."""
    real = json.loads(fixture("newsletter_items_real.json"))
    latent = {item["link"]: item["title"] for item in real["latent_space"]}
    archive = [*json.loads(fixture("latent_space_archive_offset0.json")),
               *json.loads(fixture("latent_space_archive_offset2.json"))]
    assert {post["canonical_url"]: post["title"] for post in archive} == latent
    feed = fixture("latent_space_feed.xml").decode()
    bens = fixture("bens_bites_feed.xml").decode()
    for title in latent.values():
        assert title in feed or title.startswith("Extreme Harness")  # that one: archive only
    for item in real["bens_bites"]:
        assert item["title"] in bens
        assert item["summary"] is None or item["summary"] in bens


def test_a_body_naming_a_local_file_or_a_url_is_data_never_opened(
    site: Site, tmp_path: Path,
) -> None:
    """feedparser opens a path or URL it is handed; a feed body must never be taken for one."""
    local = tmp_path / "local-feed.xml"
    local.write_bytes(fixture("latent_space_feed.xml"))
    for body in (str(local), site.url("/elsewhere")):
        site.put("/feed", body, content_type=RSS)
        site.put("/elsewhere", fixture("latent_space_feed.xml"), content_type=RSS)
        with pytest.raises(SourceError, match=r"is malformed|is not an RSS or Atom feed"):
            latent_space(site, archive=False).fetch(SINCE)
    assert "/elsewhere" not in site.paths()
