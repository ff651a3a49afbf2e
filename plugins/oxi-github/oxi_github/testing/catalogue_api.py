"""The REST endpoints of the loopback's other repositories (``catalogue``), as GitHub answers
them: an organisation's repositories, repository search, a repository's releases, its
stargazers (with star times under `application/vnd.github.star+json`, 400 pages at most) and
its commits (`since`, `until`, `sha`); every list paginated by the `Link` header."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from oxi_github.testing import payloads
from oxi_github.testing.answers import Answer, link_header, page_number, paged, param, per_page
from oxi_github.testing.bare import BareRepository
from oxi_github.testing.catalogue import (
    STARGAZER_LIMIT_MESSAGE,
    STARGAZER_PAGE_LIMIT,
    Catalogue,
    CatalogueRepository,
    sort_key,
)
from oxi_github.testing.state import Refused

STAR_MEDIA_TYPE = "application/vnd.github.star+json"
SEARCH_RESULTS_LIMIT = 1000  # GitHub serves the first 1,000 results of a search
SEARCH_QUERY_LIMIT = 256  # characters, qualifiers included
DOCS = "https://docs.github.com/rest"

Handler = Callable[..., Answer]


class CatalogueApi:
    def __init__(self, catalogue: Catalogue, urls: Callable[[], payloads.Urls]) -> None:
        self.catalogue = catalogue
        self._urls = urls
        self.stargazer_page_limit = STARGAZER_PAGE_LIMIT

    @property
    def urls(self) -> payloads.Urls:
        return self._urls()

    def route(self, method: str, path: str, query: dict[str, list[str]],
              headers: Mapping[str, str]) -> Answer | None:
        """The answer to a request for the catalogue, or None when the path is not its."""
        if method != "GET":
            return None
        if path == "/search/repositories":
            return self._search(query)
        found = re.fullmatch(r"/orgs/([^/]+)/repos", path)
        if found:
            return self._organisation(query, found[1])
        found = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        if not found:
            return None
        record = self.catalogue.get(found[1], found[2])
        if record is None:
            return None
        own = payloads.Urls(self.urls.api, self.urls.web, record.owner, record.name)
        routes: dict[str, Handler] = {
            "": lambda: Answer(200, payloads.catalogue_repository(record, self.urls)),
            "/releases": lambda: self._releases(record, query),
            "/stargazers": lambda: self._stargazers(record, query, headers),
            "/commits": lambda: commits(record.repo, query, self._url(path), own),
        }
        handler = routes.get(found[3] or "")
        if handler is None:
            raise Refused(404, "Not Found", documentation_url=DOCS)
        return handler()

    def _url(self, path: str) -> str:
        return self.urls.api + path

    def _search(self, query: dict[str, list[str]]) -> Answer:
        text = (param(query, "q") or "").strip()
        if not text:
            raise Refused(422, "Validation Failed", errors=[
                {"resource": "Search", "field": "q", "code": "missing"}],
                documentation_url=f"{DOCS}/search/search#search-repositories")
        if len(text) > SEARCH_QUERY_LIMIT:
            raise self._invalid_query(f"The search is longer than {SEARCH_QUERY_LIMIT} "
                                      "characters.")
        unknown = [name for name in re.findall(r"(?:^|\s)-?(?:org|user):(\S+)", text)
                   if name.lower() not in self.catalogue.organisations]
        if unknown:
            raise self._invalid_query(
                "The listed users and repositories cannot be searched either because the "
                "resources do not exist or you do not have permission to view them.")
        if page_number(query) * per_page(query) > SEARCH_RESULTS_LIMIT + per_page(query):
            raise Refused(422, "Only the first 1000 search results are available",
                          documentation_url=f"{DOCS}/search/search")
        descending = (param(query, "order") or "desc") == "desc"
        found = sorted(self.catalogue.search(text), key=sort_key(param(query, "sort")),
                       reverse=descending)[:SEARCH_RESULTS_LIMIT]
        items = [{**payloads.catalogue_repository(r, self.urls), "score": 1.0} for r in found]
        answer = paged(items, query, self._url("/search/repositories"))
        answer.body = {"total_count": len(found), "incomplete_results": False,
                       "items": answer.body}
        return answer

    @staticmethod
    def _invalid_query(message: str) -> Refused:
        return Refused(422, "Validation Failed", errors=[
            {"message": message, "resource": "Search", "field": "q", "code": "invalid"}],
            documentation_url=f"{DOCS}/search/search#search-repositories")

    def _organisation(self, query: dict[str, list[str]], org: str) -> Answer:
        if org.lower() not in self.catalogue.organisations:
            raise Refused(404, "Not Found", documentation_url=(
                f"{DOCS}/repos/repos#list-organization-repositories"))
        kind = param(query, "type") or "all"
        chosen = [r for r in self.catalogue.of_owner(org)
                  if kind not in ("forks", "sources") or r.fork == (kind == "forks")]
        sort = param(query, "sort") or "created"
        keys: dict[str, Callable[[CatalogueRepository], Any]] = {
            "created": lambda r: (r.created_at, r.id), "updated": lambda r: (r.pushed_at, r.id),
            "pushed": lambda r: (r.pushed_at, r.id), "full_name": lambda r: r.full_name.lower()}
        direction = param(query, "direction") or ("asc" if sort == "full_name" else "desc")
        chosen.sort(key=keys.get(sort, keys["created"]), reverse=direction == "desc")
        items = [payloads.catalogue_repository(r, self.urls) for r in chosen]
        return paged(items, query, self._url(f"/orgs/{org}/repos"))

    def _releases(self, record: CatalogueRepository, query: dict[str, list[str]]) -> Answer:
        items = [payloads.release(r, record, self.urls) for r in record.newest_releases()]
        return paged(items, query, self._url(f"/repos/{record.full_name}/releases"))

    def _stargazers(self, record: CatalogueRepository, query: dict[str, list[str]],
                    headers: Mapping[str, str]) -> Answer:
        with_time = STAR_MEDIA_TYPE in (headers.get("accept") or "")
        size = per_page(query)
        page = page_number(query)
        reachable = min(len(record.stars), self.stargazer_page_limit * size)
        last = max(1, -(-reachable // size))
        if page > last and len(record.stars) > reachable:
            raise Refused(422, STARGAZER_LIMIT_MESSAGE,
                          documentation_url=f"{DOCS}/activity/starring#list-stargazers")
        chosen = record.stars[(page - 1) * size: page * size] if page <= last else []
        items = [payloads.stargazer(at, login, self.urls, with_time=with_time)
                 for at, login in chosen]
        links = link_header(query, self._url(f"/repos/{record.full_name}/stargazers"),
                            page, last)
        return Answer(200, items, {"Link": links} if links else {})


def commits(repo: BareRepository, query: dict[str, list[str]], url: str,
            urls: payloads.Urls) -> Answer:
    """GET /repos/{owner}/{repo}/commits: newest first from `sha` (default branch), within
    `since` and `until`; an empty repository answers 409 as GitHub does."""
    documentation = f"{DOCS}/commits/commits#list-commits"
    ref = param(query, "sha") or "main"
    head = repo.branch_sha(ref) or (ref if re.fullmatch(r"[0-9a-f]{40}", ref) else None)
    if head is None:
        if not repo.heads():
            raise Refused(409, "Git Repository is empty.", documentation_url=documentation)
        raise Refused(404, f"No commit found for SHA: {ref}", documentation_url=documentation)
    found = repo.log(head, limit=10_000, since=param(query, "since"),
                     until=param(query, "until"))
    return paged([payloads.commit(c, urls) for c in found], query, url)
