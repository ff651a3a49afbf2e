"""One job: talk to GitHub's REST and GraphQL APIs politely and count every request.

- the token goes in the Authorization header, nowhere else;
- GETs are conditional (ETag / If-None-Match, remembered in a `ResponseCache` that outlives the
  process): a 304 answers from the cache and does not count against the rate limit;
- the primary rate limit (`x-ratelimit-remaining: 0`) stops every call to that resource until
  `x-ratelimit-reset`, the secondary one (403/429 with `retry-after`) for as long as told; both
  are remembered in the cache, so the next `oxi tick` process respects them too;
- 5xx answers, malformed JSON and broken connections are retried with exponential backoff;
- `Link` headers are followed for pagination (only on the API's own origin);
- every request, 304, retry and refusal is counted (`take_stats`) for the ledger.

The forge uses it, and so can any other part of oxi that reads GitHub (sources of ideas).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs
import httpx

from oxi_core.errors import ForgeSetupError, ForgeUnavailable, OxiError
from oxi_github.cache import CachedResponse, ResponseCache
from oxi_github.token import Token

USER_AGENT = "oxi-github/0.3"
API_VERSION = "2022-11-28"
SECONDARY_DEFAULT_WAIT_S = 60.0  # GitHub's docs: without retry-after, wait at least a minute
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_LINK = re.compile(r'<(?P<url>[^>]+)>\s*;\s*rel="(?P<rel>[^"]+)"')


class GitHubError(OxiError):
    """GitHub refused a request: its status and its own message (and validation errors)."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "",
                 errors: list[Any] | None = None, hint: str | None = None) -> None:
        self.status = status
        self.api_message = message
        self.errors = errors or []
        self.method = method
        self.path = path
        # The validation errors' own words ("The search is longer than 256 characters.").
        self.detail = "; ".join(_error_text(e) for e in self.errors if _error_text(e))
        text = f"GitHub answered {status} to {method} {path}: {message}".strip()
        super().__init__(text + (f" ({self.detail})" if self.detail else ""), hint=hint)


class GraphQLError(GitHubError):
    """A GraphQL answer with `errors`: each error's `type` and `message` are kept."""

    @property
    def messages(self) -> list[str]:
        return [str(e.get("message", "")) for e in self.errors if isinstance(e, dict)]

    @property
    def types(self) -> list[str]:
        return [str(e.get("type", "")) for e in self.errors if isinstance(e, dict)]


class GitHubAuthError(ForgeSetupError):
    """401: the token was refused."""


class RateLimited(ForgeUnavailable):
    def __init__(self, message: str, *, resource: str, retry_at: float,
                 secondary: bool) -> None:
        super().__init__(message, retry_at=retry_at,
                         hint="oxi makes no call to it until then and carries on with what "
                              "it knows")
        self.resource = resource
        self.secondary = secondary


def _error_text(error: Any) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        return str(error.get("message") or "/".join(
            str(error.get(k)) for k in ("resource", "field", "code") if error.get(k)))
    return ""


@attrs.frozen
class Notice:
    """Something worth a ledger event: a retry, a rate limit, an outage."""

    kind: str  # "rate_limited", "retried", "unavailable"
    message: str
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.define
class RequestStats:
    requests: int = 0  # HTTP requests made
    not_modified: int = 0  # answered 304 (free)
    retried: int = 0
    refused: int = 0  # not sent: a rate limit was in force
    by_resource: dict[str, int] = attrs.field(factory=dict)  # counted requests per resource
    rate: dict[str, dict[str, int]] = attrs.field(factory=dict)  # last headers per resource
    notices: list[Notice] = attrs.field(factory=list)

    @property
    def counted(self) -> int:
        """Requests that counted against the rate limit: all but the 304s."""
        return self.requests - self.not_modified

    def as_payload(self) -> dict[str, Any]:
        return {"requests": self.requests, "counted": self.counted,
                "not_modified": self.not_modified, "retried": self.retried,
                "refused": self.refused, "by_resource": dict(self.by_resource),
                "rate_limit": {k: dict(v) for k, v in self.rate.items()}}


@attrs.frozen
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]
    from_cache: bool = False  # a 304: the body is the cached one

    @property
    def links(self) -> dict[str, str]:
        return {m["rel"]: m["url"] for m in _LINK.finditer(self.headers.get("link", ""))}


class GitHubClient:
    def __init__(
        self, *, api_url: str, token: Token, graphql_url: str | None = None,
        cache: ResponseCache | None = None, timeout_s: float = 30.0, max_attempts: int = 3,
        backoff_s: float = 1.0, max_wait_s: float = 10.0,
        clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.graphql_url = graphql_url or graphql_url_for(self.api_url)
        self.token = token
        self.cache = cache or ResponseCache(None)
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.sleep = sleep
        self._origin = _origin(self.api_url)
        # The cache is keyed by the token too: two tokens never share an answer.
        self._identity = hashlib.sha256(token.value.encode()).hexdigest()[:12]
        self._lock = threading.Lock()
        self._stats = RequestStats()
        self._http = httpx.Client(
            timeout=timeout_s, transport=transport, follow_redirects=False,
            headers={"Accept": "application/vnd.github+json", "User-Agent": USER_AGENT,
                     "X-GitHub-Api-Version": API_VERSION,
                     "Authorization": f"Bearer {token.value}"})
        # Plugins have no shutdown hook: the pooled connections close when the client goes.
        self._finalizer = weakref.finalize(self, self._http.close)

    def close(self) -> None:
        self._finalizer()

    # -- stats ----------------------------------------------------------------------------

    def take_stats(self) -> RequestStats:
        """What was asked since the last call (and the last rate-limit headers seen)."""
        with self._lock:
            taken, self._stats = self._stats, RequestStats(rate=dict(self._stats.rate))
        return taken

    def _count(self, **changes: int) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    def _notice(self, kind: str, message: str, **details: Any) -> None:
        with self._lock:
            self._stats.notices.append(Notice(kind, message, details))

    # -- REST -----------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None, *,
            accept: str | None = None, resource: str = "core") -> Any:
        return self.request("GET", path, params=params, accept=accept, resource=resource).body

    def paginate(self, path: str, params: Mapping[str, Any] | None = None, *,
                 item_key: str | None = None, limit: int | None = None,
                 accept: str | None = None, resource: str = "core") -> list[Any]:
        """Every item of a list endpoint, page after page by the `Link` header's next."""
        items: list[Any] = []
        for response in self.pages(path, params, accept=accept, resource=resource):
            items.extend(response.body[item_key] if item_key else response.body)
            if limit is not None and len(items) >= limit:
                break
        return items if limit is None else items[:limit]

    def pages(self, path: str, params: Mapping[str, Any] | None = None, *,
              accept: str | None = None, resource: str = "core") -> Iterator[Response]:
        """A list endpoint's pages, 100 items each, following the `Link` header's next for
        as long as the caller keeps asking (stop iterating to stop paying for pages)."""
        response = self.request("GET", path, params={"per_page": 100, **(params or {})},
                                accept=accept, resource=resource)
        while True:
            yield response
            following = response.links.get("next")
            if not following:
                return
            response = self.follow(following, accept=accept, resource=resource)

    def follow(self, url: str, *, accept: str | None = None,
               resource: str = "core") -> Response:
        """GET a URL a `Link` header gave (next, prev, last), only on the API's own origin:
        the token is never sent anywhere else."""
        if _origin(url) != self._origin:
            raise GitHubError(0, f"a Link header points away from {self._origin}: {url}",
                              method="GET", path=_path(url))
        return self.request("GET", url, accept=accept, resource=resource)

    def last_known(self, path: str, params: Mapping[str, Any] | None = None, *,
                   item_key: str | None = None) -> list[Any] | None:
        """What ``paginate`` returned the last time it was answered (from the cache, no
        request), or None when nothing is known: for carrying on through a rate limit."""
        items: list[Any] = []
        url: str | None = self._url(path, {"per_page": 100, **(params or {})})
        while url is not None:
            cached = self.cache.response(f"{self._identity} {url}")
            if cached is None:
                return None
            items.extend(cached.body[item_key] if item_key else cached.body)
            url = {m["rel"]: m["url"] for m in _LINK.finditer(cached.link)}.get("next")
        return items

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        url = path if path.startswith(("http://", "https://")) else self.api_url + path
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return url

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, resource: str = "core",
                accept: str | None = None) -> Response:
        """One call. ``accept``: a media type instead of the default (the same URL answers
        another body, so it is part of the cache key); ``resource``: the rate limit it counts
        against (``core``, ``search``, ``graphql``)."""
        url = self._url(path, params)
        cache_key = (f"{self._identity} {url}" + (f" {accept}" if accept else "")
                     if method == "GET" else None)
        for attempt in range(1, self.max_attempts + 1):
            self._refuse_if_limited(resource, method, url)
            cached = self.cache.response(cache_key) if cache_key else None
            headers = {"If-None-Match": cached.etag} if cached else {}
            if accept:
                headers["Accept"] = accept
            try:
                answer = self._http.request(method, url, headers=headers, json=json_body,
                                            content=None)
            except httpx.TransportError as error:
                reason = f"{type(error).__name__}: {error}"
                self._retry_or_raise(attempt, method, url, reason, status=None)
                continue
            self._count(requests=1)
            self._note_rate(resource, answer.headers)
            if answer.status_code == 304 and cached is not None:
                self._count(not_modified=1)
                # A 304 need not repeat the Link header: the pages around are as they were.
                kept = {"link": cached.link} if cached.link else {}
                return Response(304, cached.body, {**kept, **answer.headers},
                                from_cache=True)
            with self._lock:
                self._stats.by_resource[resource] = self._stats.by_resource.get(resource, 0) + 1
            if answer.status_code in TRANSIENT_STATUSES:
                self._retry_or_raise(attempt, method, url, _message(answer),
                                     status=answer.status_code)
                continue
            if answer.status_code in (403, 429) and self._rate_limited(resource, answer):
                if self._wait_out_secondary(resource, answer, attempt):
                    continue
                raise self._limited_error(resource, method, url)
            if answer.status_code == 401:
                raise GitHubAuthError(
                    f"GitHub refused the token from {self.token.origin} "
                    f"(401 {_message(answer)})",
                    hint="check the token is valid and not expired; "
                         "docs/runbooks/github.md lists the scopes it needs")
            body: Any = None
            if answer.status_code != 204 and answer.content:
                try:
                    body = answer.json()
                except ValueError:
                    self._retry_or_raise(attempt, method, url,
                                         f"malformed JSON in a {answer.status_code} answer",
                                         status=answer.status_code)
                    continue
            if answer.status_code >= 400:
                raise GitHubError(answer.status_code, _message(answer, body),
                                  method=method, path=_path(url),
                                  errors=body.get("errors") if isinstance(body, dict) else None)
            if cache_key and answer.headers.get("etag"):
                self.cache.store_response(cache_key, CachedResponse(
                    answer.headers["etag"], body, answer.headers.get("link", "")))
            return Response(answer.status_code, body, dict(answer.headers))
        raise AssertionError("unreachable: the last attempt raises")

    # -- GraphQL --------------------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of a GraphQL answer; GraphQLError when it has `errors`."""
        answer = self.request("POST", self.graphql_url, resource="graphql",
                              json_body={"query": query, "variables": dict(variables or {})})
        body = answer.body if isinstance(answer.body, dict) else {}
        errors = body.get("errors") or []
        if any(isinstance(e, dict) and e.get("type") == "RATE_LIMITED" for e in errors):
            reset = float(answer.headers.get("x-ratelimit-reset") or self.clock() + 60)
            self._block("graphql", reset, secondary=False)
            raise self._limited_error("graphql", "POST", self.graphql_url)
        if errors:
            raise GraphQLError(answer.status, "; ".join(_error_text(e) for e in errors),
                               method="POST", path=_path(self.graphql_url), errors=errors)
        data = body.get("data")
        if not isinstance(data, dict):
            raise GraphQLError(answer.status, "an answer without data", method="POST",
                               path=_path(self.graphql_url))
        return data

    # -- rate limits and retries ----------------------------------------------------------

    def _note_rate(self, resource: str, headers: httpx.Headers) -> None:
        if "x-ratelimit-remaining" not in headers:
            return
        named = headers.get("x-ratelimit-resource") or resource
        seen = {key: int(headers[f"x-ratelimit-{key}"]) for key in
                ("limit", "remaining", "used", "reset") if
                headers.get(f"x-ratelimit-{key}", "").isdigit()}
        with self._lock:
            self._stats.rate[named] = seen
        if seen.get("remaining") == 0 and "reset" in seen:
            self._block(named, float(seen["reset"]), secondary=False)

    def _rate_limited(self, resource: str, answer: httpx.Response) -> bool:
        """Is this 403/429 a rate limit (primary or secondary), not a permission problem?"""
        if answer.headers.get("x-ratelimit-remaining") == "0":
            reset = float(answer.headers.get("x-ratelimit-reset") or self.clock() + 60)
            self._block(resource, reset, secondary=False)
            return True
        retry_after = answer.headers.get("retry-after")
        if retry_after is not None or "rate limit" in _message(answer).lower():
            wait = float(retry_after) if retry_after and retry_after.isdigit() else (
                SECONDARY_DEFAULT_WAIT_S)
            self._block(resource, self.clock() + wait, secondary=True)
            return True
        return False

    def _wait_out_secondary(self, resource: str, answer: httpx.Response, attempt: int) -> bool:
        """A short secondary-limit wait is slept through (then the request is tried again)."""
        block = self.cache.fact(self._block_key(resource))
        if not block or not block.get("secondary") or attempt >= self.max_attempts:
            return False
        wait = float(block["until"]) - self.clock()
        if wait > self.max_wait_s:
            return False
        self._notice("rate_limited", f"secondary rate limit on {resource}: waiting "
                                     f"{max(wait, 0):.0f}s as told", resource=resource,
                     secondary=True, wait_s=round(max(wait, 0), 1))
        self._count(retried=1)
        self.sleep(max(wait, 0))
        self.cache.remember(self._block_key(resource), None)
        return True

    def _block_key(self, resource: str) -> str:
        # A limit is the token's: the forge and a source sharing one cache file with one token
        # respect each other's limits, and another token's limit never stops this one.
        return f"blocked:{self._identity}:{resource}"

    def _block(self, resource: str, until: float, *, secondary: bool) -> None:
        self.cache.remember(self._block_key(resource),
                            {"until": until, "secondary": secondary})

    def _refuse_if_limited(self, resource: str, method: str, url: str) -> None:
        block = self.cache.fact(self._block_key(resource))
        if not block:
            return
        if float(block["until"]) <= self.clock():
            self.cache.remember(self._block_key(resource), None)
            return
        self._count(refused=1)
        raise self._limited_error(resource, method, url, noted=False)

    def _limited_error(self, resource: str, method: str, url: str,
                       noted: bool = True) -> RateLimited:
        block = self.cache.fact(self._block_key(resource)) or {}
        until = float(block.get("until", self.clock() + SECONDARY_DEFAULT_WAIT_S))
        secondary = bool(block.get("secondary"))
        kind = "secondary" if secondary else "primary"
        stamp = time.strftime("%H:%M:%S", time.gmtime(until))
        message = (f"GitHub's {kind} rate limit on {resource}: no calls until {stamp} UTC "
                   f"({method} {_path(url)} not sent)" if not noted else
                   f"GitHub's {kind} rate limit on {resource}: no calls until {stamp} UTC")
        if noted:
            self._notice("rate_limited", message, resource=resource, secondary=secondary,
                         until=until)
        return RateLimited(message, resource=resource, retry_at=until, secondary=secondary)

    def _retry_or_raise(self, attempt: int, method: str, url: str, reason: str,
                        status: int | None) -> None:
        if status is not None and not reason.startswith(str(status)):
            reason = f"{status} {reason}"
        if attempt >= self.max_attempts:
            self._notice("unavailable", f"{method} {_path(url)} failed {attempt} times: {reason}",
                         method=method, path=_path(url), status=status, attempts=attempt)
            raise ForgeUnavailable(f"GitHub did not answer {method} {_path(url)} after "
                                   f"{attempt} attempts: {reason}",
                                   hint="transient; the next tick tries again")
        delay = self.backoff_s * 2 ** (attempt - 1)
        self._notice("retried", f"{method} {_path(url)}: {reason}; retrying in {delay:.1f}s",
                     method=method, path=_path(url), status=status, attempt=attempt)
        self._count(retried=1)
        self.sleep(delay)


def graphql_url_for(api_url: str) -> str:
    """GitHub.com answers GraphQL at /graphql beside the REST root; GitHub Enterprise Server
    at /api/graphql beside /api/v3."""
    root = api_url.rstrip("/")
    if root.endswith("/api/v3"):
        return root[: -len("/v3")] + "/graphql"
    return root + "/graphql"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _message(answer: httpx.Response, body: Any = None) -> str:
    if body is None:
        try:
            body = json.loads(answer.content or b"null")
        except ValueError:
            body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return answer.reason_phrase or f"HTTP {answer.status_code}"
