"""AlphaSignal: its per-story pages from a loopback site, or its issues from a Maildir or mbox."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from newsletter_fixtures import fixture
from oxi_newsletter.source import NewsletterSource
from oxi_newsletter.testing import Site

from oxi_core.config import load_config
from oxi_core.errors import ConfigError, SourceError

INKLING = ("https://alphasignal.ai/news/"
           "mira-murati-s-thinking-machines-drops-inkling-a-975b-open-multimodal-reasoning")
COHERE = "https://alphasignal.ai/news/cohere-merges-with-aleph-alpha-to-build-a-20b-openai-rival"
ZED = "https://alphasignal.ai/news/zed-launches-delta-to-replace-git-where-ai-agents-write-code"
SINCE = datetime(2026, 1, 1, tzinfo=UTC)


def serve_alphasignal(site: Site) -> None:
    site.put("/news", fixture("alphasignal_news_index.html"))
    for url, name in ((INKLING, "inkling"), (COHERE, "cohere"), (ZED, "zed")):
        site.put(url.removeprefix("https://alphasignal.ai"),
                 fixture(f"alphasignal_story_{name}.html"))


def web(site: Site, **kwargs: object) -> NewsletterSource:
    return NewsletterSource(publication="alphasignal", base_url=site.base_url,
                            **kwargs)  # type: ignore[arg-type]


def test_story_pages_linked_from_the_index_become_candidates(site: Site) -> None:
    serve_alphasignal(site)
    inkling, cohere, zed = web(site).fetch(SINCE)

    assert [c.identifier for c in (inkling, cohere, zed)] == [INKLING, COHERE, ZED]
    assert {c.source for c in (inkling, cohere, zed)} == {"newsletter:alphasignal"}
    assert {c.signal_kind for c in (inkling, cohere, zed)} == {"newsletter_post"}
    assert {c.metadata["kind"] for c in (inkling, cohere, zed)} == {"story"}
    # og:title first, "| AlphaSignal" dropped; else <title>.
    assert inkling.title == ("Mira Murati's Thinking Machines Drops Inkling, a 975B Open "
                             "Multimodal Reasoning Model")
    assert inkling.summary == ("Thinking Machines released Inkling, an open multimodal "
                               "reasoning model.")
    assert inkling.published_at == datetime(2026, 6, 20, 14, 0, tzinfo=UTC)
    assert inkling.url == INKLING
    assert inkling.metadata == {"publication": "AlphaSignal", "kind": "story", "via": "web",
                                "slug": INKLING.rsplit("/", 1)[1]}
    # No description: the article's text; the date from <time datetime>.
    assert cohere.title == "Cohere Merges With Aleph Alpha to Build..."
    assert cohere.summary.startswith("Cohere Merges With Aleph Alpha June 18, 2026 Cohere and")
    assert cohere.published_at == datetime(2026, 6, 18, 9, 30, tzinfo=UTC)
    assert zed.summary == "Zed launches Delta."  # no <article>: <main>
    # Each story page fetched once, though the index links Inkling twice.
    assert site.paths() == ["/news", *(u.removeprefix("https://alphasignal.ai")
                                       for u in (INKLING, COHERE, ZED))]


def test_stories_older_than_since_are_left_out_and_max_stories_caps_the_pages(
    site: Site,
) -> None:
    serve_alphasignal(site)
    assert [c.identifier for c in web(site).fetch(datetime(2026, 6, 1, tzinfo=UTC))] == [
        INKLING, COHERE]
    assert [c.identifier for c in web(site, max_stories=1).fetch(SINCE)] == [INKLING]


def test_a_second_scan_reads_unchanged_pages_from_304s(site: Site, tmp_path: Path) -> None:
    serve_alphasignal(site)
    first = web(site, cache_dir=tmp_path / "cache").fetch(SINCE)
    assert web(site, cache_dir=tmp_path / "cache").fetch(SINCE) == first
    assert [r.status for r in site.requests[4:]] == [304, 304, 304, 304]


def test_an_index_without_story_links_is_a_layout_change(site: Site) -> None:
    site.put("/news", "<html><body><div id='app'></div><script src='/app.js'></script>"
                      "</body></html>")
    with pytest.raises(SourceError, match=r"the index .*/news links no story page") as raised:
        web(site).fetch(SINCE)
    assert raised.value.details["layout"] is True


def test_a_story_page_without_a_title_is_a_layout_change(site: Site) -> None:
    serve_alphasignal(site)
    site.put(COHERE.removeprefix("https://alphasignal.ai"), "<html><body><p>hi</p></body></html>")
    with pytest.raises(SourceError, match="has no title"):
        web(site).fetch(SINCE)


def test_a_missing_story_page_fails_with_its_status(site: Site) -> None:
    serve_alphasignal(site)
    del site.resources[ZED.removeprefix("https://alphasignal.ai")]
    with pytest.raises(SourceError, match="answered 404") as raised:
        web(site).fetch(SINCE)
    assert raised.value.details["status"] == 404
    assert "changed its layout" in (raised.value.hint or "")


# -- mail ---------------------------------------------------------------------------------


def issue(subject: str, sent: datetime, html: str, *,
          sender: str = "AlphaSignal <news@alphasignal.ai>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "operator@example.com"
    message["Subject"] = subject
    message["Date"] = format_datetime(sent)
    message["Message-ID"] = make_msgid(domain="alphasignal.ai")
    message.set_content("This issue is best read in HTML.")
    message.add_alternative(html, subtype="html")
    return message


STORIES_HTML = f"""<html><body><table><tr><td>
<a href="{INKLING}"><img src="https://alphasignal.ai/img/inkling.png" alt=""></a>
<h2><a href="{INKLING}">Mira Murati's Thinking Machines Drops Inkling, a 975B Open ...</a></h2>
<p><a href="{COHERE}">Cohere Merges With Aleph Alpha to Build... | AlphaSignal</a></p>
<p><a href="https://alphasignal.ai/unsubscribe?u=1">Unsubscribe</a></p>
</td></tr></table></body></html>"""

NO_LINKS_HTML = ("<html><body><h1>AlphaSignal weekly</h1><p>The week in AI: three open "
                 "models, one merger.</p></body></html>")


def fill(box: mailbox.Mailbox) -> None:
    box.add(issue("Inkling, and a merger", datetime(2026, 6, 21, 7, tzinfo=UTC), STORIES_HTML))
    box.add(issue("The week in AI", datetime(2026, 6, 28, 7, tzinfo=UTC), NO_LINKS_HTML))
    box.add(issue("An old issue", datetime(2025, 12, 1, 7, tzinfo=UTC), STORIES_HTML))
    box.add(issue("AINews: not much happened today", datetime(2026, 6, 22, tzinfo=UTC),
                  "<p>Latent Space</p>", sender="Latent.Space <swyx+ainews@substack.com>"))
    box.flush()


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_issues_in_the_mailbox_become_story_candidates(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("Mail" if kind == "maildir" else "alphasignal.mbox")
    box: mailbox.Mailbox = mailbox.Maildir(path) if kind == "maildir" else mailbox.mbox(path)
    fill(box)
    box.close()

    source = NewsletterSource(publication="alphasignal", mailbox=path)
    inkling, cohere, weekly = source.fetch(SINCE)

    # Stories carry the web's identifiers, the headline (not the image link) as title.
    assert inkling.identifier == INKLING
    assert inkling.title == "Mira Murati's Thinking Machines Drops Inkling, a 975B Open ..."
    assert inkling.published_at == datetime(2026, 6, 21, 7, tzinfo=UTC)
    assert inkling.metadata["via"] == "mail"
    assert inkling.metadata["issue"] == "Inkling, and a merger"
    assert cohere.identifier == COHERE
    assert cohere.title == "Cohere Merges With Aleph Alpha to Build..."
    # An issue linking no story page is one candidate, identified by its Message-ID.
    assert weekly.signal_kind == "newsletter_post"
    assert weekly.metadata["kind"] == "issue"
    assert weekly.title == "The week in AI"
    assert weekly.identifier.startswith("<") and weekly.identifier.endswith("@alphasignal.ai>")
    assert weekly.summary == "This issue is best read in HTML."
    # Read only: nothing in the mailbox moved or changed.
    again = mailbox.Maildir(path) if kind == "maildir" else mailbox.mbox(path)
    assert len(again) == 4
    again.close()


def test_a_missing_mailbox_fails_the_scan(tmp_path: Path) -> None:
    source = NewsletterSource(publication="alphasignal", mailbox=tmp_path / "nowhere")
    with pytest.raises(SourceError, match="no mailbox at"):
        source.fetch(SINCE)
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match="is a folder but not a Maildir"):
        NewsletterSource(publication="alphasignal", mailbox=tmp_path / "plain").fetch(SINCE)


# -- oxi.toml -----------------------------------------------------------------------------

ADAPTER = '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n'


def test_oxi_toml_builds_one_source_per_publication_bound_to_the_state_folder(
    tmp_path: Path,
) -> None:
    config = tmp_path / "oxi.toml"
    config.write_text(ADAPTER + """
[sources.latent_space]
type = "newsletter"
kwargs = { publication = "latent_space" }

[sources.bens_bites]
type = "newsletter"
kwargs = { publication = "bens_bites", archive = false, timeout_s = 10 }

[sources.alphasignal]
type = "newsletter"
kwargs = { publication = "alphasignal", mailbox = "mail/alphasignal" }
""")
    loaded = load_config(config)
    latent = loaded.instance("sources", "latent_space")
    assert isinstance(latent, NewsletterSource)
    assert latent.http_cache == tmp_path.resolve() / ".oxi" / "cache" / "newsletter"
    assert loaded.instance("sources", "bens_bites").archive is False
    assert loaded.instance("sources", "alphasignal").mailbox == (
        tmp_path.resolve() / "mail" / "alphasignal")


@pytest.mark.parametrize(("kwargs", "key", "says"), [
    ('{ publication = "the_batch" }', "kwargs.publication",
     "choose one of latent_space, bens_bites, alphasignal"),
    ("{ }", "kwargs.publication", "required key is missing"),
    ('{ publication = "latent_space", mailbox = "mail" }', "kwargs.mailbox",
     "mailbox is read only for alphasignal"),
    ('{ publication = "latent_space", base_url = "www.latent.space" }', "kwargs.base_url",
     "must be an http(s) URL"),
    ('{ publication = "latent_space", timeout_s = -1 }', "kwargs.timeout_s",
     "must be positive"),
    ('{ publication = "latent_space", archive = "yes" }', "kwargs.archive",
     "expected true or false"),
])
def test_oxi_toml_errors_name_the_key(tmp_path: Path, kwargs: str, key: str, says: str) -> None:
    config = tmp_path / "oxi.toml"
    config.write_text(ADAPTER + f'[sources.news]\ntype = "newsletter"\nkwargs = {kwargs}\n')
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.table == "sources.news"
    assert raised.value.key == key
    assert says in raised.value.message
