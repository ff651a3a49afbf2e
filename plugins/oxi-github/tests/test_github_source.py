"""The `github` auto-improve source against the loopback GitHub: release feeds of pinned
organisations and topic queries, the star-velocity and commit-activity prefilters, pagination
by the Link header (reading only the end of a big repository's stargazers), and every failure
(rate limit, 401, 5xx, an unknown organisation, a refused query) as one SourceError."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from oxi_github.cache import ResponseCache
from oxi_github.client import GitHubClient, RateLimited
from oxi_github.source import GitHubSource
from oxi_github.testing import LoopbackGitHub
from oxi_github.token import Token

from oxi_core.auto_improve.settings import AutoImproveSettings
from oxi_core.config import RuntimeContext
from oxi_core.errors import SourceError
from oxi_core.policy import RepoPaths

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=365)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def stars(recent: int, old: int = 0) -> list[datetime]:
    """``old`` stars a year ago, then ``recent`` spread over the last 29 days."""
    return ([LONG_AGO + timedelta(minutes=i) for i in range(old)]
            + [days_ago(29) + timedelta(minutes=10 * i) for i in range(recent)])


def release(tag: str, published: datetime, **extra: Any) -> dict[str, Any]:
    return {"tag_name": tag, "published_at": published, "name": extra.pop("name", tag),
            "body": extra.pop("body", f"What changed in {tag}."), **extra}


def source_for(hub: LoopbackGitHub, tmp_path: Path, *, accounts: dict[str, tuple[str, ...]]
               | None = None, **kwargs: Any) -> GitHubSource:
    """A source bound as oxi.toml's loading binds it: the repository's state folder (.oxi) and
    the [auto_improve] settings."""
    source = GitHubSource(api_url=hub.api_url, token=kwargs.pop("token", hub.token),
                          backoff_s=0.01, **kwargs)
    paths = RepoPaths(repo_root=tmp_path, roadmap=tmp_path / "roadmap.md",
                      state_dir=tmp_path / ".oxi", worktrees_dir=tmp_path / ".oxi" / "wt")
    source.bind(RuntimeContext(paths, tmp_path, AutoImproveSettings(accounts=accounts or {})))
    return source


def requests_to(hub: LoopbackGitHub, fragment: str, since: int = 0) -> list[str]:
    return [r.path for r in hub.requests[since:] if fragment in r.path]


def pages_of(paths: Iterable[str]) -> list[int]:
    return [int((parse_qs(urlsplit(p).query).get("page") or ["1"])[0]) for p in paths]


# -- the prefilters ------------------------------------------------------------------------


def test_a_repository_with_200_stars_in_30_days_is_kept_and_one_with_50_is_dropped(
        hub: LoopbackGitHub, tmp_path: Path) -> None:
    recent_commit = [days_ago(2)]
    hub.add_repository("acme/rising", description="Agents that fix their own tests",
                       topics=["agents"], stars=stars(200, old=300), commits=recent_commit)
    hub.add_repository("acme/steady", description="A mature agent runtime",
                       topics=["agents"], stars=stars(50, old=500), commits=recent_commit)
    hub.add_repository("acme/tiny", description="A small agent", topics=["agents"],
                       stars=stars(50), commits=recent_commit)
    hub.add_repository("acme/unrelated", topics=["games"], stars=stars(400),
                       commits=recent_commit)

    found = source_for(hub, tmp_path, topics=("agents",)).fetch(days_ago(7))

    assert [c.target for c in found] == ["acme/rising"]
    [rising] = found
    assert rising.signal_kind == "github_repository" and rising.source == "github"
    assert rising.identifier == rising.url == f"{hub.web_url}/acme/rising"
    assert rising.title == "acme/rising: Agents that fix their own tests"
    assert "Topics: agents" in rising.summary
    velocity = rising.metadata["star_velocity"]
    assert velocity["stars"] >= 150 and velocity["window_days"] == 30
    assert rising.metadata["found_by"] == "topic:agents"
    # 50 stars in all can never make 150 in 30 days: no stargazer was read for it.
    assert not requests_to(hub, "/acme/tiny/stargazers")
    steady = requests_to(hub, "/acme/steady/stargazers")
    assert steady and all(r.headers["accept"] == "application/vnd.github.star+json"
                          for r in hub.requests if "/stargazers" in r.path)
    [search] = [r for r in hub.requests if "/search/repositories" in r.path]
    query = parse_qs(urlsplit(search.path).query)
    assert query["q"] == [f"topic:agents pushed:>={days_ago(14).date()} archived:false"]
    assert query["sort"] == ["stars"] and search.resource == "search"


def test_a_repository_without_commits_in_14_days_is_dropped(hub: LoopbackGitHub,
                                                            tmp_path: Path) -> None:
    # Pushed yesterday (a branch), but its default branch's last commit is 20 days old.
    hub.add_repository("acme/dormant", topics=["agents"], stars=stars(300),
                       commits=[days_ago(40), days_ago(20)], pushed_at=days_ago(1))
    hub.add_repository("acme/alive", topics=["agents"], stars=stars(300),
                       commits=[days_ago(40), days_ago(3)])

    found = source_for(hub, tmp_path, topics=("agents",)).fetch(days_ago(7))

    assert [c.target for c in found] == ["acme/alive"]
    assert found[0].metadata["last_commit_at"].startswith(str(days_ago(3).date()))
    [asked] = requests_to(hub, "/acme/dormant/commits")
    since = parse_qs(urlsplit(asked).query)["since"][0]
    assert since.startswith(str(days_ago(14).date()))
    # Activity is checked first: a dormant repository costs no stargazer request.
    assert not requests_to(hub, "/acme/dormant/stargazers")


def test_the_prefilters_can_be_turned_off(hub: LoopbackGitHub, tmp_path: Path) -> None:
    hub.add_repository("acme/quiet", topics=["agents"], stars=stars(3),
                       commits=[days_ago(60)], pushed_at=days_ago(60))
    found = source_for(hub, tmp_path, topics=("agents",), min_stars_per_day=0,
                       active_days=0).fetch(days_ago(7))
    assert [c.target for c in found] == ["acme/quiet"]
    assert not requests_to(hub, "/stargazers") and not requests_to(hub, "/commits")


def test_a_young_repository_is_measured_over_its_age(hub: LoopbackGitHub,
                                                     tmp_path: Path) -> None:
    # 60 stars in its 10 days: 6 a day (over 30 days it would read as 2).
    hub.add_repository("acme/new", topics=["agents"], created_at=days_ago(10),
                       stars=[days_ago(9) + timedelta(hours=3 * i) for i in range(60)],
                       commits=[days_ago(1)])
    [found] = source_for(hub, tmp_path, topics=("agents",)).fetch(days_ago(7))
    assert found.metadata["star_velocity"]["window_days"] == pytest.approx(10, abs=0.01)


# -- release feeds ---------------------------------------------------------------------------


def test_releases_of_pinned_organisations_from_the_account_list(hub: LoopbackGitHub,
                                                                tmp_path: Path) -> None:
    hot = stars(200)
    hub.add_repository("acme/sdk", description="The Acme SDK", stars=hot,
                       commits=[days_ago(1)], releases=[
                           release("v2.0.0", days_ago(2), name="v2.0.0: streaming tools",
                                   body="Tool calls stream as they are made."),
                           release("v2.0.0-rc1", days_ago(5), prerelease=True),
                           release("v1.9.0", days_ago(30)),
                           release("v3.0.0-draft", days_ago(1), draft=True)])
    hub.add_repository("acme/old-news", stars=hot, commits=[days_ago(1)],
                       releases=[release("v1.0.0", days_ago(40))])
    hub.add_repository("acme/unloved", stars=stars(10, old=200), commits=[days_ago(1)],
                       releases=[release("v0.2.0", days_ago(1))])
    hub.add_repository("acme/retired", stars=hot, commits=[days_ago(1)], archived=True,
                       releases=[release("v9.0.0", days_ago(1))])
    hub.add_repository("acme/empty", stars=hot, pushed_at=days_ago(1),  # no commit at all
                       releases=[release("v0.0.1", days_ago(1))])
    hub.add_repository("other/elsewhere", stars=hot, commits=[days_ago(1)],
                       releases=[release("v1.0.0", days_ago(1))])

    source = source_for(hub, tmp_path, accounts={"github_orgs": ("acme",)})
    found = source.fetch(days_ago(7))

    assert [(c.title, c.metadata["tag"]) for c in found] == [
        ("acme/sdk v2.0.0: streaming tools", "v2.0.0"),
        ("acme/sdk v2.0.0-rc1", "v2.0.0-rc1")]
    latest = found[0]
    assert latest.signal_kind == "github_release" and latest.target == "acme/sdk"
    assert latest.identifier == latest.url == f"{hub.web_url}/acme/sdk/releases/tag/v2.0.0"
    assert latest.summary == "The Acme SDK\n\nTool calls stream as they are made."
    assert latest.published_at is not None and abs(latest.published_at - days_ago(2)) < (
        timedelta(seconds=1))
    assert latest.metadata["found_by"] == "org:acme" and found[1].metadata["prerelease"]
    [listing] = requests_to(hub, "/orgs/acme/repos")
    assert parse_qs(urlsplit(listing).query) == {
        "per_page": ["100"], "type": ["sources"], "sort": ["pushed"], "direction": ["desc"]}
    assert not requests_to(hub, "/acme/retired/")  # archived: skipped
    [empty] = [r for r in hub.requests if "/acme/empty/commits" in r.path]
    assert empty.status == 409  # "Git Repository is empty.": no activity, dropped
    assert not requests_to(hub, "/acme/old-news/stargazers")  # no new release: no prefilter
    assert not requests_to(hub, "other/elsewhere")


def test_an_organisation_listing_stops_at_repositories_not_pushed_lately(
        hub: LoopbackGitHub, tmp_path: Path) -> None:
    hub.add_repository("acme/live", stars=stars(200), commits=[days_ago(1)],
                       releases=[release("v1.1.0", days_ago(1))])
    hub.add_repository("acme/stale", stars=stars(200), commits=[days_ago(30)],
                       releases=[release("v1.0.0", days_ago(3))])
    found = source_for(hub, tmp_path, orgs=("acme",)).fetch(days_ago(7))
    assert [c.target for c in found] == ["acme/live"]
    assert not requests_to(hub, "/acme/stale/")  # past the activity window: never asked


# -- pagination --------------------------------------------------------------------------------


def test_a_big_repository_costs_only_the_last_stargazer_pages(hub: LoopbackGitHub,
                                                              tmp_path: Path) -> None:
    hub.add_repository("acme/famous", topics=["agents"], stars=stars(200, old=4800),
                       commits=[days_ago(1)])
    source = source_for(hub, tmp_path, topics=("agents",))

    [found] = source.fetch(days_ago(7))

    assert found.metadata["star_velocity"]["stars"] >= 150
    # The last page (from the star count), then back by the Link header's prev: 2 of 50.
    assert pages_of(requests_to(hub, "/acme/famous/stargazers")) == [50, 49]
    # The next scan asks the same pages conditionally: unchanged, they are 304s, which
    # GitHub does not count.
    mark = len(hub.requests)
    [again] = source_for(hub, tmp_path, topics=("agents",)).fetch(days_ago(7))
    assert again.metadata == found.metadata
    second = [r for r in hub.requests[mark:] if "/acme/famous/stargazers" in r.path]
    assert pages_of(r.path for r in second) == [50, 49]
    assert all(r.status == 304 and not r.counted for r in second)
    # A new star opens page 51: read in full, the pages before it are still 304s.
    famous = hub.catalogue.get("acme", "famous")
    assert famous is not None
    famous.stars.append((NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "late-fan"))
    mark = len(hub.requests)
    source_for(hub, tmp_path, topics=("agents",)).fetch(days_ago(7))
    third = [r for r in hub.requests[mark:] if "/acme/famous/stargazers" in r.path]
    assert [(page, r.status) for page, r in zip(pages_of(r.path for r in third), third,
                                                  strict=True)] == [(51, 200), (50, 304),
                                                                    (49, 304)]


def test_a_star_count_that_lags_the_list_is_caught_up_by_next(hub: LoopbackGitHub,
                                                              tmp_path: Path) -> None:
    hub.add_repository("acme/lagging", topics=["agents"], stars=stars(120, old=180),
                       commits=[days_ago(1)])
    # Between the search's answer and the stargazer reading, 80 more people star it.
    lagging = hub.catalogue.get("acme", "lagging")
    assert lagging is not None
    source = source_for(hub, tmp_path, topics=("agents",))
    search = source.client.get("/search/repositories", {"q": "topic:agents"},
                               resource="search")
    lagging.stars += [(NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), f"fan-{i}") for i in range(80)]
    verdict = source._rising(search["items"][0], NOW)
    assert verdict.kept and verdict.measured["star_velocity"]["stars"] >= 150
    assert pages_of(requests_to(hub, "/acme/lagging/stargazers")) == [3, 4, 3]


def test_stars_past_githubs_page_limit_are_unmeasured_and_kept(hub: LoopbackGitHub,
                                                              tmp_path: Path) -> None:
    hub.catalogue_api.stargazer_page_limit = 3  # GitHub's is 400 pages: 40,000 stars
    hub.add_repository("acme/huge", topics=["agents"], stars=stars(300, old=600),
                       commits=[days_ago(1)])
    hub.add_repository("acme/giant", topics=["agents"], stars=stars(300, old=40_000),
                       commits=[days_ago(1)])
    found = source_for(hub, tmp_path, topics=("agents",)).fetch(days_ago(7))
    assert [c.target for c in found] == ["acme/giant", "acme/huge"]
    assert all("unmeasured" in c.metadata["star_velocity"] for c in found)
    # Past GitHub's 400 pages nothing is asked; the loopback's 3-page limit answered 422.
    assert not requests_to(hub, "/acme/giant/stargazers")
    [refused] = [r for r in hub.requests if "/acme/huge/stargazers" in r.path]
    assert refused.status == 422


def test_lists_are_read_page_by_page_through_the_link_header(hub: LoopbackGitHub,
                                                             tmp_path: Path) -> None:
    for number in range(105):  # 105 recently pushed repositories: two pages of the listing
        hub.add_repository(f"big-org/repo-{number:03}", pushed_at=days_ago(0.5))
    hub.add_repository("big-org/zz-shipping", stars=stars(200), commits=[days_ago(2)],
                       releases=[release(f"v1.{n}.0", days_ago(6) + timedelta(hours=n))
                                 for n in range(25)])
    found = source_for(hub, tmp_path, orgs=("big-org",), max_repos_per_org=200).fetch(
        days_ago(7))

    assert len(found) == 25  # three pages of ten releases
    assert pages_of(requests_to(hub, "/orgs/big-org/repos")) == [1, 2]
    assert pages_of(requests_to(hub, "/big-org/zz-shipping/releases")) == [1, 2, 3]


def test_a_query_reads_at_most_max_results_per_query(hub: LoopbackGitHub,
                                                     tmp_path: Path) -> None:
    for number in range(5):
        hub.add_repository(f"acme/agent-{number}", topics=["agents"], stars=stars(200),
                           commits=[days_ago(1)])
    found = source_for(hub, tmp_path, queries=("agent",), max_results_per_query=3,
                       search_sort="updated").fetch(days_ago(7))
    assert len(found) == 3
    [search] = requests_to(hub, "/search/repositories")
    assert parse_qs(urlsplit(search).query)["per_page"] == ["3"]


# -- failures -------------------------------------------------------------------------------


def test_a_rate_limit_is_a_source_error_and_binds_the_forge_too(hub: LoopbackGitHub,
                                                                tmp_path: Path) -> None:
    hub.add_repository("acme/sdk", stars=stars(200), commits=[days_ago(1)],
                       releases=[release("v1.0.0", days_ago(1))])
    hub.exhaust("core", reset_in_s=120)
    source = source_for(hub, tmp_path, orgs=("acme",))
    with pytest.raises(SourceError) as caught:
        source.fetch(days_ago(7))
    error = caught.value
    assert error.source == "github" and "rate limit on core" in error.reason
    assert error.details["rate_limit"] == "core" and error.details["retry_at"] > NOW.timestamp()
    assert "next scan" in (error.hint or "")
    # The forge's client shares the cache file and the token: it does not even ask.
    sent = len(hub.requests)
    forge_client = GitHubClient(api_url=hub.api_url, token=Token(hub.token, "a test"),
                                cache=ResponseCache(tmp_path / ".oxi" / "github" /
                                                    "cache.sqlite"))
    with pytest.raises(RateLimited):
        forge_client.get(f"/repos/{hub.full_name}")
    assert len(hub.requests) == sent


def test_the_search_rate_limit_is_its_own(hub: LoopbackGitHub, tmp_path: Path) -> None:
    hub.add_repository("acme/sdk", topics=["agents"], stars=stars(200), commits=[days_ago(1)],
                       releases=[release("v1.0.0", days_ago(1))])
    hub.exhaust("search", reset_in_s=30)
    with pytest.raises(SourceError) as caught:
        source_for(hub, tmp_path, topics=("agents",)).fetch(days_ago(7))
    assert "rate limit on search" in caught.value.reason
    # Core calls still go: the release feed reads on.
    assert source_for(hub, tmp_path, orgs=("acme",)).fetch(days_ago(7))


def test_a_refused_token_is_a_source_error_naming_401(hub: LoopbackGitHub,
                                                      tmp_path: Path) -> None:
    source = source_for(hub, tmp_path, orgs=("acme",), token="ghp_not_the_right_one")
    with pytest.raises(SourceError) as caught:
        source.fetch(days_ago(7))
    assert "401 Bad credentials" in caught.value.reason
    assert caught.value.details == {"status": 401}


def test_an_outage_is_retried_then_a_source_error_naming_the_status(hub: LoopbackGitHub,
                                                                    tmp_path: Path) -> None:
    hub.add_repository("acme/sdk", stars=stars(200), commits=[days_ago(1)])
    hub.fail("status", match=r"GET /api/v3/orgs/acme/repos", status=502, times=3)
    with pytest.raises(SourceError) as caught:
        source_for(hub, tmp_path, orgs=("acme",)).fetch(days_ago(7))
    assert "after 3 attempts: 502" in caught.value.reason
    assert len(requests_to(hub, "/orgs/acme/repos")) == 3


def test_an_unknown_organisation_or_a_refused_query_names_what_to_fix(
        hub: LoopbackGitHub, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        source_for(hub, tmp_path, orgs=("no-such-org",)).fetch(days_ago(7))
    assert "no organisation 'no-such-org'" in caught.value.reason
    assert "kwargs.orgs" in (caught.value.hint or "")
    with pytest.raises(SourceError) as refused:
        source_for(hub, tmp_path, queries=("org:no-such-org agents",)).fetch(days_ago(7))
    assert "refused the search 'org:no-such-org agents' (422 Validation Failed: The listed " \
        "users and repositories cannot be searched" in refused.value.reason
    assert "kwargs.queries" in (refused.value.hint or "")


def test_nothing_to_read_is_a_source_error(hub: LoopbackGitHub, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        source_for(hub, tmp_path).fetch(days_ago(7))
    assert "nothing to read" in caught.value.reason
    assert not hub.requests


def test_bad_kwargs_are_refused_when_built() -> None:
    with pytest.raises(ValueError, match="search_sort"):
        GitHubSource(search_sort="popular")
    with pytest.raises(ValueError, match="star_window_days"):
        GitHubSource(star_window_days=0)
