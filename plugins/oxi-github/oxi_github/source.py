"""GitHubSource: auto-improve's outside ideas from GitHub (source type ``github``).

Two feeds: the releases of pinned organisations' repositories, and repositories found by topic
or search queries. Each repository is kept only when it is alive and rising: a commit in the
last ``active_days`` (the commits list with ``since``) and at least ``min_stars_per_day`` stars
a day over the last ``star_window_days`` (the stargazers list with star times,
``application/vnd.github.star+json``). Stars are read from the end of the list (GitHub lists
them oldest first): the last page, then back by the ``Link`` header's ``prev`` only until the
window is decided, so a repository with 30,000 stars costs a few pages, not three hundred.

It reads through the forge's client (``GitHubClient``): the same token resolution, conditional
requests in the same cache file (`.oxi/github/cache.sqlite`), the same rate-limit bookkeeping
(a limit the forge met holds here, and the other way round) and retries. A rate limit, a
refused token, an outage or a bad organisation or query is one ``SourceError`` with the reason:
the scan records it and goes on with its other sources.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from oxi_core.errors import ForgeSetupError, ForgeUnavailable, OxiError, SourceError
from oxi_core.log import get_logger
from oxi_core.models import Candidate
from oxi_core.protocols import PluginContext
from oxi_github.cache import ResponseCache, shared_cache
from oxi_github.client import GitHubClient, GitHubError, RateLimited
from oxi_github.token import token_for_api

SOURCE = "github"
STAR_MEDIA_TYPE = "application/vnd.github.star+json"
PAGE = 100  # items per page asked for (GitHub's maximum)
RELEASES_PAGE = 10  # releases asked for at a time: most repositories have none new
SUMMARY_CHARS = 4000
SEARCH_SORTS = ("stars", "forks", "updated", "best-match")
STARGAZER_PAGES_LISTED = 400  # GitHub lists a repository's first 40,000 stars, no more


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _not_negative(_instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be 0 or more, got {value!r}")


def _search_sort(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in SEARCH_SORTS:
        raise ValueError(f"{attribute.name} must be one of {', '.join(SEARCH_SORTS)}, "
                         f"not {value!r}")


@attrs.frozen
class Verdict:
    """Whether a repository passed the prefilters, and what they measured."""

    kept: bool
    reason: str = ""
    measured: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.define
class GitHubSource:
    """``[sources.NAME] type = "github"``: kwargs below (an organisation list or a query is
    needed)."""

    # Organisations whose repositories' releases are read, beside the org_list.
    orgs: tuple[str, ...] = ()
    # The list of [auto_improve] accounts holding pinned organisations.
    org_list: str = "github_orgs"
    # Topics: each is searched as `topic:NAME` (repository search).
    topics: tuple[str, ...] = ()
    # Repository search queries in GitHub's syntax (`language:rust agent`).
    queries: tuple[str, ...] = ()
    # The token; write { env = "NAME" }, never the token (default: as the forge finds one).
    token: str = attrs.field(default="", repr=False)
    api_url: str = "https://api.github.com"  # GitHub Enterprise Server: https://HOST/api/v3
    # Star-velocity prefilter: stars a day a repository needs over the window (0: off).
    min_stars_per_day: float = attrs.field(default=5.0, validator=_not_negative)
    # The star-velocity window, in days (a younger repository: its age).
    star_window_days: float = attrs.field(default=30.0, validator=_positive)
    # Commit-activity prefilter: no commit on the default branch this many days: drop (0: off).
    active_days: float = attrs.field(default=14.0, validator=_not_negative)
    # Repositories read per query, best first by search_sort.
    max_results_per_query: int = attrs.field(default=30, validator=_positive)
    # How a query's results are ordered: stars, forks, updated or best-match.
    search_sort: str = attrs.field(default="stars", validator=_search_sort)
    # Repositories of one organisation read per scan, the most recently pushed first.
    max_repos_per_org: int = attrs.field(default=100, validator=_positive)
    timeout_s: float = attrs.field(default=30.0, validator=_positive)  # seconds a request may take
    max_attempts: int = 3  # tries for a request that failed in transit or with a 5xx
    backoff_s: float = 1.0  # the first retry's delay (it doubles)
    max_wait_s: float = 10.0  # a secondary rate limit this short is waited out
    _state_dir: Path | None = attrs.field(default=None, init=False, repr=False)
    _listed: tuple[str, ...] = attrs.field(default=(), init=False, repr=False)
    _client: GitHubClient | None = attrs.field(default=None, init=False, repr=False)
    _verdicts: dict[str, Verdict] = attrs.field(factory=dict, init=False, repr=False)

    def bind(self, context: PluginContext) -> None:
        self._state_dir = context.paths.state_dir
        self._listed = tuple(context.auto_improve.accounts.get(self.org_list, ()))

    @property
    def organisations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.orgs, *self._listed)))

    @property
    def searches(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*(f"topic:{t}" for t in self.topics), *self.queries)))

    @property
    def client(self) -> GitHubClient:
        if self._client is None:
            token = token_for_api(self.api_url, self.token,
                                  "the github source's `token` kwarg in oxi.toml")
            cache = shared_cache(self._state_dir) if self._state_dir else ResponseCache(None)
            self._client = GitHubClient(
                api_url=self.api_url, token=token, cache=cache, timeout_s=self.timeout_s,
                max_attempts=self.max_attempts, backoff_s=self.backoff_s,
                max_wait_s=self.max_wait_s)
        return self._client

    # -- the Source protocol ----------------------------------------------------------------

    def fetch(self, since: datetime) -> list[Candidate]:
        if not self.organisations and not self.searches:
            raise SourceError(
                f"nothing to read: no orgs, topics or queries, and [auto_improve] "
                f"accounts.{self.org_list} is empty or missing", source=SOURCE,
                hint='set kwargs.orgs = ["anthropics"], kwargs.topics = ["llm-agents"] or '
                     f'[auto_improve] accounts.{self.org_list}')
        since = _aware(since)
        now = datetime.now(UTC)
        self._verdicts = {}
        try:
            found: list[Candidate] = []
            for org in self.organisations:
                found += self._releases_of(org, since, now)
            for query in self.searches:
                found += self._search(query, now)
        except OxiError as error:
            raise _failure(error) from error
        finally:
            self._log_traffic()
        return found

    # -- release feeds ---------------------------------------------------------------------

    def _releases_of(self, org: str, since: datetime, now: datetime) -> list[Candidate]:
        """New releases of the organisation's repositories (most recently pushed first; a
        repository not pushed within the activity window fails that prefilter anyway, so the
        listing stops there)."""
        pushed_after = now - timedelta(days=self.active_days) if self.active_days else None
        found: list[Candidate] = []
        for repository in self._organisation_repositories(org, pushed_after):
            releases = self._new_releases(repository, since)
            if not releases:
                continue
            verdict = self._prefilter(repository, now)
            if verdict.kept:
                found += [release_candidate(release, repository, verdict, f"org:{org}")
                          for release in releases]
        return found

    def _organisation_repositories(self, org: str,
                                   pushed_after: datetime | None) -> Iterator[dict[str, Any]]:
        seen = 0
        try:
            for page in self.client.pages(f"/orgs/{org}/repos", {
                    "type": "sources", "sort": "pushed", "direction": "desc"}):
                for repository in page.body:
                    pushed = repository.get("pushed_at")
                    if pushed is None or repository.get("archived") or repository.get(
                            "disabled"):
                        continue  # never pushed to (empty), or read-only
                    if pushed_after and _time(pushed) < pushed_after:
                        return
                    yield repository
                    seen += 1
                    if seen >= self.max_repos_per_org:
                        return
        except GitHubError as error:
            if error.status != 404:
                raise
            raise SourceError(
                f"GitHub knows no organisation {org!r} (404 on GET /orgs/{org}/repos)",
                source=SOURCE, details={"status": 404, "org": org},
                hint=f"fix the name in kwargs.orgs or [auto_improve] accounts.{self.org_list}",
            ) from error

    def _new_releases(self, repository: Mapping[str, Any],
                      since: datetime) -> list[dict[str, Any]]:
        """Releases published after ``since`` (GitHub lists the newest first), drafts left
        out. A repository gone since the listing has none."""
        found: list[dict[str, Any]] = []
        path = f"/repos/{repository['full_name']}/releases"
        try:
            for page in self.client.pages(path, {"per_page": RELEASES_PAGE}):
                for release in page.body:
                    published = release.get("published_at")
                    if release.get("draft") or not published:
                        continue
                    if _time(published) <= since:
                        return found
                    found.append(release)
        except GitHubError as error:
            if error.status not in (404, 451):
                raise
        return found

    # -- topic and search queries ---------------------------------------------------------

    def _search(self, query: str, now: datetime) -> list[Candidate]:
        """Repositories a search finds, alive and rising: one candidate per repository."""
        qualifiers = []
        if self.active_days and "pushed:" not in query:
            qualifiers.append(f"pushed:>={(now - timedelta(days=self.active_days)).date()}")
        if "archived:" not in query:
            qualifiers.append("archived:false")
        params: dict[str, Any] = {"q": " ".join([query, *qualifiers]),
                                  "per_page": min(PAGE, self.max_results_per_query)}
        if self.search_sort != "best-match":
            params.update(sort=self.search_sort, order="desc")
        found: list[Candidate] = []
        read = 0
        try:
            for page in self.client.pages("/search/repositories", params,
                                          resource="search"):
                for repository in page.body.get("items") or []:
                    read += 1
                    verdict = self._prefilter(repository, now)
                    if verdict.kept:
                        found.append(repository_candidate(repository, verdict, query))
                    if read >= self.max_results_per_query:
                        return found
        except GitHubError as error:
            if error.status == 422:
                why = f"{error.api_message}: {error.detail}" if error.detail else (
                    error.api_message)
                raise SourceError(f"GitHub refused the search {query!r} (422 {why})",
                                  source=SOURCE, details={"status": 422, "query": query},
                                  hint="fix the query in kwargs.queries or kwargs.topics "
                                       "(GitHub's repository search syntax)") from error
            raise
        return found

    # -- the prefilters --------------------------------------------------------------------

    def _prefilter(self, repository: Mapping[str, Any], now: datetime) -> Verdict:
        """Commit activity first (one request), then star velocity; each repository once a
        scan."""
        name = str(repository["full_name"])
        if name not in self._verdicts:
            verdict = self._active(name, now)
            if verdict.kept:
                rising = self._rising(repository, now)
                verdict = attrs.evolve(rising, measured={**verdict.measured,
                                                         **rising.measured})
            if not verdict.kept:
                get_logger("oxi_github.source").info("github_repository_dropped",
                                                     repository=name, reason=verdict.reason)
            self._verdicts[name] = verdict
        return self._verdicts[name]

    def _active(self, name: str, now: datetime) -> Verdict:
        if not self.active_days:
            return Verdict(True)
        after = now - timedelta(days=self.active_days)
        try:
            commits = self.client.get(f"/repos/{name}/commits",
                                      {"since": _iso(after), "per_page": 1})
        except GitHubError as error:
            if error.status in (404, 409, 451):  # gone, empty, or blocked
                return Verdict(False, f"no commits to read ({error.status} "
                                      f"{error.api_message})")
            raise
        if not commits:
            return Verdict(False, f"no commits in {self.active_days:g} days")
        date = ((commits[0].get("commit") or {}).get("committer") or {}).get("date")
        return Verdict(True, measured={"last_commit_at": date})

    def _rising(self, repository: Mapping[str, Any], now: datetime) -> Verdict:
        """Stars a day over the window (a repository younger than it: over its age)."""
        if not self.min_stars_per_day:
            return Verdict(True)
        created = repository.get("created_at")
        age_days = (now - _time(created)).total_seconds() / 86400 if created else math.inf
        days = max(1.0, min(self.star_window_days, age_days))
        needed = math.ceil(self.min_stars_per_day * days)
        total = int(repository.get("stargazers_count") or 0)
        if total < needed:  # fewer stars than the window needs, ever: no request
            return Verdict(False, f"{total} stars in all, fewer than the {needed} that "
                                  f"{self.min_stars_per_day:g} a day over {days:g} days need")
        try:
            counted = self._stars_since(str(repository["full_name"]),
                                        now - timedelta(days=days), needed, total)
        except GitHubError as error:
            if error.status not in (404, 451):  # gone since it was listed, or blocked
                raise
            return Verdict(False, f"no stars to read ({error.status} {error.api_message})")
        if counted is None:
            # GitHub lists only the oldest 40,000 stars: the window cannot be read. A
            # repository that big and still committed to is kept, and says so.
            return Verdict(True, measured={"star_velocity": {
                "window_days": days, "unmeasured": f"GitHub lists only the oldest stars of "
                                                   f"its {total}"}})
        stars, complete = counted
        measured = {"star_velocity": {
            "window_days": round(days, 2), "stars": stars, "complete": complete,
            "per_day": round(stars / days, 2)}}
        if stars < needed:
            return Verdict(False, f"{stars} stars in {days:g} days, {stars / days:.2f} a day "
                                  f"< {self.min_stars_per_day:g}", measured)
        return Verdict(True, measured=measured)

    def _stars_since(self, name: str, cutoff: datetime, needed: int,
                     total: int) -> tuple[int, bool] | None:
        """Stars given at or after ``cutoff``: (count, complete). GitHub lists stars oldest
        first, so the reading starts at the last page (found from the repository's star count,
        then by the Link header's next should the count lag) and goes back by ``prev`` until a
        star older than the cutoff shows (complete) or ``needed`` are counted (enough to keep
        it: a lower bound). None when GitHub does not list the newest stars (it lists 400
        pages at most)."""
        last_page = max(1, math.ceil(total / PAGE))
        if last_page > STARGAZER_PAGES_LISTED:
            return None
        try:
            response = self.client.request(
                "GET", f"/repos/{name}/stargazers", params={"per_page": PAGE, "page": last_page},
                accept=STAR_MEDIA_TYPE)
            while following := response.links.get("next"):  # more stars than the count said
                response = self.client.follow(following, accept=STAR_MEDIA_TYPE)
            count = 0
            while True:
                stamps = [_time(item["starred_at"]) for item in response.body]
                count += sum(stamp >= cutoff for stamp in stamps)
                if stamps and stamps[0] < cutoff:
                    return count, True
                if count >= needed:
                    return count, False
                previous = response.links.get("prev")
                if previous is None:
                    return count, True
                response = self.client.follow(previous, accept=STAR_MEDIA_TYPE)
        except GitHubError as error:
            if error.status == 422:  # "pagination is limited for this resource"
                return None
            raise

    # -- plumbing --------------------------------------------------------------------------

    def _log_traffic(self) -> None:
        if self._client is None:
            return
        stats = self._client.take_stats()
        get_logger("oxi_github.source").info("github_source_requests", **stats.as_payload())


def release_candidate(release: Mapping[str, Any], repository: Mapping[str, Any],
                      verdict: Verdict, found_by: str) -> Candidate:
    """One release as a Candidate, identified by its page (a tag's URL never changes)."""
    name = str(repository["full_name"])
    label = release.get("name") or release.get("tag_name") or ""
    title = f"{name} {label}".strip() if label not in name else label
    notes = (release.get("body") or "").strip()
    described = repository.get("description") or ""
    summary = "\n\n".join(part for part in (described, notes) if part)[:SUMMARY_CHARS]
    return Candidate(
        source=SOURCE, identifier=str(release["html_url"]), title=title, summary=summary,
        url=str(release["html_url"]), published_at=_time(release["published_at"]),
        signal_kind="github_release", target=name.lower(),
        metadata={**_repository_facts(repository, verdict, found_by),
                  "tag": release.get("tag_name"), "prerelease": bool(release.get("prerelease"))},
    )


def repository_candidate(repository: Mapping[str, Any], verdict: Verdict,
                         found_by: str) -> Candidate:
    """A repository a query found, identified by its page (found again later, it is the same
    candidate: proposed once)."""
    name = str(repository["full_name"])
    described = (repository.get("description") or "").strip()
    topics = ", ".join(repository.get("topics") or [])
    summary = "\n\n".join(part for part in (described, f"Topics: {topics}" if topics else "")
                          if part)
    pushed = repository.get("pushed_at")
    return Candidate(
        source=SOURCE, identifier=str(repository["html_url"]),
        title=f"{name}: {described}" if described else name, summary=summary[:SUMMARY_CHARS],
        url=str(repository["html_url"]), published_at=_time(pushed) if pushed else None,
        signal_kind="github_repository", target=name.lower(),
        metadata=_repository_facts(repository, verdict, found_by),
    )


def _repository_facts(repository: Mapping[str, Any], verdict: Verdict,
                      found_by: str) -> dict[str, Any]:
    return {"repository": repository["full_name"], "found_by": found_by,
            "stars": repository.get("stargazers_count"),
            "language": repository.get("language"), "topics": list(repository.get("topics") or []),
            "pushed_at": repository.get("pushed_at"), **verdict.measured}


def _failure(error: OxiError) -> SourceError:
    """What went wrong, as the scan records it: the reason, GitHub's status, when to retry."""
    if isinstance(error, SourceError):
        return error
    details: dict[str, Any] = {}
    hint: str | None
    if isinstance(error, RateLimited):
        details = {"rate_limit": error.resource, "secondary": error.secondary,
                   "retry_at": error.retry_at}
        hint = "the next scan reads again once the limit resets"
    elif isinstance(error, ForgeSetupError):  # no token, or a 401
        hint = error.hint or "check the token (docs/runbooks/github.md)"
        if "401" in error.message:
            details["status"] = 401
    elif isinstance(error, ForgeUnavailable):
        hint = "GitHub is failing or unreachable; the next scan tries again"
    elif isinstance(error, GitHubError):
        details = {"status": error.status, "request": f"{error.method} {error.path}"}
        hint = error.hint
    else:
        hint = error.hint
    return SourceError(error.message, source=SOURCE, details=details, hint=hint)


def _page_number(url: str) -> int:
    values = parse_qs(urlsplit(url).query).get("page") or ["1"]
    return int(values[0]) if values[0].isdigit() else 1


def _time(text: Any) -> datetime:
    return _aware(datetime.fromisoformat(str(text).replace("Z", "+00:00")))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
