"""Other people's repositories on the loopback GitHub: what an auto-improve source reads.

Each one is a real bare repository whose commits carry the dates a test gives (the commits
list and its `since` are git's), with its stargazers (each star's time, oldest first, as
GitHub lists them), its releases, its topics, and its place in an organisation. Repository
search understands the qualifiers a source sends (`topic:`, `org:`, `user:`, `pushed:`,
`created:`, `stars:`, `archived:`, `fork:`, `language:`, `is:public`) with GitHub's
comparison and range syntax (`>`, `>=`, `<`, `<=`, `a..b`, `a..*`).
"""

from __future__ import annotations

import operator
import re
import shlex
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from oxi_github.testing.bare import PERSON_IDENTITY, BareRepository

# GitHub lists at most 400 pages of a repository's stargazers (40,000 with per_page=100); a
# page past that answers 422, and rel="last" points at the last page it will serve.
STARGAZER_PAGE_LIMIT = 400
STARGAZER_LIMIT_MESSAGE = (
    "In order to keep the API fast for everyone, pagination is limited for this resource. "
    "Check the rel=last link relation in the Link response header to see how far back you "
    "can traverse.")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@attrs.define
class ReleaseRecord:
    id: int
    tag_name: str
    published_at: str
    name: str | None = None
    body: str = ""
    prerelease: bool = False
    draft: bool = False
    author: str = "a-maintainer"
    target_commitish: str = "main"


@attrs.define
class CatalogueRepository:
    id: int
    owner: str
    name: str
    repo: BareRepository
    description: str | None = None
    topics: list[str] = attrs.field(factory=list)
    language: str | None = "Python"
    created_at: str = "2020-01-01T00:00:00Z"
    pushed_at: str = "2020-01-01T00:00:00Z"
    stars: list[tuple[str, str]] = attrs.field(factory=list)  # (starred_at, login), oldest first
    releases: list[ReleaseRecord] = attrs.field(factory=list)
    archived: bool = False
    fork: bool = False
    forks_count: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def stargazers_count(self) -> int:
        return len(self.stars)

    def newest_releases(self) -> list[ReleaseRecord]:
        """As GitHub lists them: newest first, drafts only for people who may push (never the
        loopback's token, for someone else's repository)."""
        return sorted((r for r in self.releases if not r.draft),
                      key=lambda r: (r.published_at, r.id), reverse=True)


class Catalogue:
    """Every repository the loopback knows beside its own, by lower-cased full name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repositories: dict[str, CatalogueRepository] = {}
        self.organisations: set[str] = set()

    def get(self, owner: str, name: str) -> CatalogueRepository | None:
        return self.repositories.get(f"{owner}/{name}".lower())

    def of_owner(self, owner: str) -> list[CatalogueRepository]:
        return [r for r in self.repositories.values() if r.owner.lower() == owner.lower()]

    def add(self, record_id: int, full_name: str, *, commits: Sequence[datetime],
            stars: Iterable[datetime], releases: Sequence[ReleaseRecord],
            **fields: Any) -> CatalogueRepository:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"a repository is named owner/name, not {full_name!r}")
        repo = BareRepository.create(self.root / owner / f"{name}.git")
        for number, moment in enumerate(sorted(commits), start=1):
            dated = {**PERSON_IDENTITY, "GIT_AUTHOR_DATE": iso(moment),
                     "GIT_COMMITTER_DATE": iso(moment)}
            repo.commit_files("main", {"CHANGES.md": f"change {number}\n"},
                              f"change {number}", identity=dated)
        starred = [(iso(moment), f"stargazer-{index}")
                   for index, moment in enumerate(sorted(stars), start=1)]
        record = CatalogueRepository(record_id, owner, name, repo, stars=starred,
                                     releases=list(releases), **fields)
        if commits and "pushed_at" not in fields:
            record.pushed_at = iso(max(commits))
        self.repositories[full_name.lower()] = record
        self.organisations.add(owner.lower())
        return record

    # -- search -------------------------------------------------------------------------

    def search(self, query: str) -> list[CatalogueRepository]:
        """The repositories matching GitHub search syntax ``query`` (every term must match)."""
        try:
            terms = shlex.split(query)
        except ValueError:
            terms = query.split()
        found = list(self.repositories.values())
        if not any(term.startswith("fork:") for term in terms):
            found = [r for r in found if not r.fork]  # forks only when asked for
        for term in terms:
            found = [r for r in found if _matches(r, term)]
        return found


def sort_key(sort: str | None) -> Any:
    """GitHub's `sort` of repository search (best match: the stars, here)."""
    if sort == "forks":
        return lambda r: (r.forks_count, r.id)
    if sort == "updated":
        return lambda r: (r.pushed_at, r.id)
    return lambda r: (r.stargazers_count, r.id)


_QUALIFIER = re.compile(r"^(?P<key>[a-z-]+):(?P<value>.+)$")


def _matches(repo: CatalogueRepository, term: str) -> bool:
    negate = term.startswith("-")
    term = term.removeprefix("-")
    found = _QUALIFIER.match(term)
    if found is None:
        words = " ".join([repo.name, repo.description or "", *repo.topics]).lower()
        result = term.lower() in words
        return not result if negate else result
    key, value = found["key"], found["value"]
    if key == "topic":
        result = value.lower() in [t.lower() for t in repo.topics]
    elif key in ("org", "user"):
        result = repo.owner.lower() == value.lower()
    elif key == "repo":
        result = repo.full_name.lower() == value.lower()
    elif key == "language":
        result = (repo.language or "").lower() == value.lower()
    elif key == "archived":
        result = repo.archived is (value == "true")
    elif key == "fork":
        result = {"true": True, "only": repo.fork}.get(value, not repo.fork)
    elif key == "is":
        result = value in ("public", "repository")
    elif key == "stars":
        result = _compare(repo.stargazers_count, value, int)
    elif key in ("pushed", "created"):
        stamp = parse_time(repo.pushed_at if key == "pushed" else repo.created_at)
        result = _compare(stamp, value, _day_or_time)
    else:  # an unknown qualifier is searched for as text, as GitHub does
        result = term.lower() in f"{repo.name} {repo.description or ''}".lower()
    return not result if negate else result


def _day_or_time(text: str) -> datetime:
    return parse_time(text if "T" in text else f"{text}T00:00:00Z")


def _compare(actual: Any, spec: str, parse: Any) -> bool:
    """GitHub's `>n`, `>=n`, `<n`, `<=n`, `n..m`, `n..*`, `*..m` and `n`."""
    if ".." in spec:
        low, _, high = spec.partition("..")
        return (low == "*" or actual >= parse(low)) and (high == "*" or actual <= parse(high))
    for symbol, test in ((">=", operator.ge), ("<=", operator.le), (">", operator.gt),
                         ("<", operator.lt)):
        if spec.startswith(symbol):
            return bool(test(actual, parse(spec[len(symbol):])))
    if parse is _day_or_time and "T" not in spec:  # a day matches any time in it
        day = parse(spec)
        return bool(day <= actual < day.replace(hour=23, minute=59, second=59))
    return bool(actual == parse(spec))
