"""A loopback GitHub on 127.0.0.1: one real bare repository served over git's smart HTTP, and the
REST (v3) and GraphQL (v4) endpoints oxi uses, laid out like GitHub Enterprise Server
(`/api/v3`, `/api/graphql`, `/OWNER/REPO.git`).

It is stateful and scriptable: checks pending, failing or green, auto-merge not allowed, no
branch protection, a merge queue, primary and secondary rate limits, 5xx answers, malformed
JSON, a person closing a pull request or pushing to main. Bodies, headers, status codes and
error messages follow GitHub's OpenAPI description and docs (`shared/fixtures/github/`).

    with LoopbackGitHub(tmp_path) as hub:
        hub.seed({"README.md": "hello\\n"})
        clone = hub.clone(tmp_path / "clone")
        ...
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import attrs

from oxi_core.testing.model_server import LoopbackHTTPServer
from oxi_github.testing import payloads
from oxi_github.testing.answers import Answer, paged, param
from oxi_github.testing.bare import BareRepository
from oxi_github.testing.catalogue import (
    Catalogue,
    CatalogueRepository,
    ReleaseRecord,
    iso,
)
from oxi_github.testing.catalogue_api import CatalogueApi, commits
from oxi_github.testing.githttp import git_http_backend
from oxi_github.testing.graphql_api import GraphQLApi
from oxi_github.testing.state import PullRecord, Refused, RepositoryState, Settings

LOCALHOST = "127.0.0.1"
DEFAULT_TOKEN = "ghp_loopback0000000000000000000000000000"  # noqa: S105 - a test token
HOUR_S = 3600
RATE_DOCS = "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"
SECONDARY_DOCS = ("https://docs.github.com/rest/overview/resources-in-the-rest-api"
                  "#secondary-rate-limits")


@attrs.frozen
class RecordedRequest:
    method: str
    path: str  # with the query string
    status: int
    resource: str  # core, graphql, git
    counted: bool  # counted against the primary rate limit (a 304 is not)
    headers: Mapping[str, str]  # as sent, Authorization removed
    body: bytes
    at: float


@attrs.define
class Fault:
    """A scripted answer for the next ``times`` requests whose "METHOD /path" matches."""

    kind: str  # "status", "malformed_json", "secondary_rate_limit"
    match: str = ""  # a regular expression searched in "METHOD /path?query"
    times: int = 1
    status: int = 500
    retry_after: int | None = None
    body: Mapping[str, Any] | None = None


@attrs.define
class RateLimit:
    limit: int = 5000
    used: int = 0
    reset: int = 0
    window_s: int = HOUR_S  # core and graphql: an hour; search: a minute

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def roll(self, now: float) -> None:
        if now >= self.reset:
            self.used = 0
            self.reset = int(now) + self.window_s

    def headers(self, resource: str) -> dict[str, str]:
        return {"x-ratelimit-limit": str(self.limit),
                "x-ratelimit-remaining": str(self.remaining),
                "x-ratelimit-used": str(self.used), "x-ratelimit-reset": str(self.reset),
                "x-ratelimit-resource": resource}


class LoopbackGitHub:
    def __init__(self, root: Path, *, owner: str = "octo-org", name: str = "demo",
                 token: str = DEFAULT_TOKEN, viewer: str = "oxi-bot") -> None:
        self.root = root
        self.owner = owner
        self.name = name
        self.token = token
        self.git_root = root / "git"
        self.repo = BareRepository.create(self.git_root / owner / f"{name}.git")
        self.state = RepositoryState(self.repo, owner=owner, name=name, viewer=viewer)
        # "full", "read" (writes answer 403) or "none" (the private repository answers 404).
        self.access = "full"
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.limits = {"core": RateLimit(), "graphql": RateLimit(),
                       "search": RateLimit(limit=30, window_s=60)}
        # Other people's repositories, for auto-improve's GitHub source (add_repository).
        self.catalogue = Catalogue(root / "catalogue")
        self.catalogue_api = CatalogueApi(self.catalogue, lambda: self.urls)
        self._server: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = iter(range(5000, 10**9))

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = LoopbackHTTPServer((LOCALHOST, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="loopback-github", daemon=True)
        self._thread.start()
        self.graphql = GraphQLApi(self.state, self.web_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the loopback GitHub first"
        return int(self._server.server_address[1])

    @property
    def web_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.web_url}/api/v3"

    @property
    def graphql_url(self) -> str:
        return f"{self.web_url}/api/graphql"

    @property
    def git_url(self) -> str:
        return f"{self.web_url}/{self.owner}/{self.name}.git"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def urls(self) -> payloads.Urls:
        return payloads.Urls(self.api_url, self.web_url, self.owner, self.name)

    @property
    def settings(self) -> Settings:
        return self.state.settings

    # -- what a test (or a person on GitHub) does --------------------------------------

    def seed(self, files: Mapping[str, str], message: str = "initial commit") -> str:
        with self.state.lock:
            return self.repo.commit_files(self.state.base_branch, files, message)

    def push(self, branch: str, files: Mapping[str, str | None], message: str) -> str:
        """A person's push to ``branch`` (main included; a new branch starts from main): the
        pull requests follow."""
        with self.state.lock:
            sha = self.repo.commit_files(branch, files, message, start=self.state.base_branch)
            self.state.settle()
            return sha

    def close_pull(self, number: int) -> None:
        """A person closes the pull request without merging it."""
        with self.state.lock:
            self.state.close(self.state.pull(number))

    def merge_by_hand(self, number: int) -> str:
        with self.state.lock:
            return self.state.squash_merge(self.state.pull(number), sha=None, title=None,
                                           message=None, by="a-person")

    def set_check(self, number: int, outcome: str, name: str | None = None) -> None:
        """The required check (or ``name``) on the pull request's head: success, failure,
        pending..."""
        with self.state.lock:
            pull = self.state.pull(number)
            for check in ([name] if name else self.state.settings.required_checks):
                self.state.set_check(pull.head_sha, check, outcome)
            self.state.settle()

    def set_status(self, number: int, context: str, state: str) -> None:
        with self.state.lock:
            self.state.set_status(self.state.pull(number).head_sha, context, state)
            self.state.settle()

    def pull(self, number: int) -> PullRecord:
        with self.state.lock:
            return attrs.evolve(self.state.pull(number))

    def pulls(self) -> list[PullRecord]:
        with self.state.lock:
            return [attrs.evolve(p) for p in sorted(self.state.pulls.values(),
                                                      key=lambda p: p.number)]

    def add_repository(self, full_name: str, *, description: str | None = None,
                       topics: Sequence[str] = (), stars: Iterable[datetime] = (),
                       commits: Sequence[datetime] = (),
                       releases: Sequence[Mapping[str, Any]] = (), language: str = "Python",
                       archived: bool = False, fork: bool = False,
                       created_at: datetime | None = None,
                       pushed_at: datetime | None = None) -> CatalogueRepository:
        """Someone else's repository, as an auto-improve source finds it: its commits (real
        ones, at these times), a star at each of ``stars``, ``releases`` (dicts with
        `tag_name`, `published_at` (a datetime) and optionally `name`, `body`,
        `prerelease`, `draft`), listed under its owner (an organisation) and found by
        search. ``pushed_at`` defaults to the last commit's time."""
        with self.state.lock:
            records = [ReleaseRecord(id=self.next_id(), **{
                **release, "published_at": iso(release["published_at"])}) for release in releases]
            extra = {key: iso(value) for key, value in (("created_at", created_at),
                                                         ("pushed_at", pushed_at)) if value}
            return self.catalogue.add(
                self.next_id(), full_name, commits=commits, stars=stars, releases=records,
                description=description, topics=list(topics), language=language,
                archived=archived, fork=fork, **extra)

    def fail(self, kind: str = "status", *, match: str = "", times: int = 1, status: int = 500,
             retry_after: int | None = None) -> None:
        """Script the next ``times`` matching requests: a status (5xx), malformed JSON, a
        secondary rate limit."""
        with self.state.lock:
            self.faults.append(Fault(kind, match, times, status, retry_after))

    def exhaust(self, resource: str = "core", reset_in_s: float = 60.0) -> None:
        """The primary rate limit is spent until ``reset_in_s`` from now."""
        with self.state.lock:
            limit = self.limits[resource]
            limit.reset = int(time.time() + reset_in_s)
            limit.used = limit.limit

    def counted(self, since: int = 0, resource: str | None = None) -> list[RecordedRequest]:
        """Requests since index ``since`` that counted against the primary rate limit."""
        with self.state.lock:
            return [r for r in self.requests[since:]
                    if r.counted and (resource is None or r.resource == resource)]

    def clone(self, destination: Path) -> Path:
        """A clone of the repository as a person would make it (credentials on the command
        line are fine for a test's own clone; oxi never does this)."""
        import subprocess

        url = self.git_url.replace("http://", f"http://x-access-token:{self.token}@")
        subprocess.run(["git", "clone", "-q", url, str(destination)], check=True,
                       capture_output=True)
        subprocess.run(["git", "remote", "set-url", "origin", self.git_url], cwd=destination,
                       check=True, capture_output=True)
        return destination

    # -- serving ------------------------------------------------------------------------

    def record(self, request: RecordedRequest) -> None:
        with self.state.lock:
            self.requests.append(request)

    def next_id(self) -> int:
        return next(self._ids)

    def handle_api(self, method: str, path: str, query: dict[str, list[str]],
                   headers: Mapping[str, str], body: bytes) -> tuple[Answer, str, bool]:
        """(answer, resource, counted) for one REST or GraphQL request."""
        resource = ("graphql" if path == "/api/graphql" else
                    "search" if path.startswith("/api/v3/search/") else "core")
        with self.state.lock:
            limit = self.limits[resource]
            limit.roll(time.time())
            auth = self._authenticate(headers)
            if auth is not None:
                return auth, resource, False
            fault = self._take_fault(method, path, query)
            if fault is not None:
                limit.used += 1
                return self._fault_answer(fault, limit, resource), resource, True
            if limit.remaining <= 0:
                return Answer(403, {"message": "API rate limit exceeded for user ID 1.",
                                    "documentation_url": RATE_DOCS},
                              limit.headers(resource)), resource, False
        try:
            if resource == "graphql":
                answer = self._graphql(body)
            else:
                with self.state.lock:
                    answer = self._rest(method, path.removeprefix("/api/v3"), query, body,
                                        headers)
        except Refused as refused:
            error: dict[str, Any] = {"message": refused.message}
            if refused.errors is not None:
                error["errors"] = refused.errors
            error["documentation_url"] = refused.documentation_url
            error["status"] = str(refused.status)
            answer = Answer(refused.status, error)
        with self.state.lock:
            counted = True
            if method == "GET" and answer.status == 200 and answer.body is not None:
                tag = 'W/"' + hashlib.sha256(_encode(answer.body)).hexdigest()[:40] + '"'
                answer.headers["ETag"] = tag
                if tag in (headers.get("if-none-match") or ""):
                    # A conditional request answered 304 does not count (GitHub's docs).
                    answer = Answer(304, None, {"ETag": tag})
                    counted = False
            if counted:
                limit.used += 1
            answer.headers.update(limit.headers(resource))
        return answer, resource, counted

    def _authenticate(self, headers: Mapping[str, str]) -> Answer | None:
        given = headers.get("authorization", "")
        scheme, _, credential = given.partition(" ")
        if not given:
            return Answer(401, {"message": "Requires authentication",
                                "documentation_url": "https://docs.github.com/rest",
                                "status": "401"})
        if scheme.lower() not in ("bearer", "token") or credential != self.token:
            return Answer(401, {"message": "Bad credentials",
                                "documentation_url": "https://docs.github.com/rest",
                                "status": "401"})
        return None

    def _take_fault(self, method: str, path: str, query: Mapping[str, list[str]]) -> Fault | None:
        target = f"{method} {path}" + (("?" + urlencode(query, doseq=True)) if query else "")
        for fault in self.faults:
            if fault.times > 0 and re.search(fault.match, target):
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_answer(fault: Fault, limit: RateLimit, resource: str) -> Answer:
        if fault.kind == "malformed_json":
            return Answer(200, b'{"message": "this body stops in the mid',
                          {"Content-Type": "application/json; charset=utf-8"})
        if fault.kind == "secondary_rate_limit":
            headers = limit.headers(resource)
            if fault.retry_after is not None:
                headers["retry-after"] = str(fault.retry_after)
            return Answer(fault.status if fault.status in (403, 429) else 403, {
                "message": "You have exceeded a secondary rate limit and have been temporarily "
                           "blocked from content creation. Please retry your request again "
                           "later.", "documentation_url": SECONDARY_DOCS}, headers)
        return Answer(fault.status, fault.body or {"message": "Server Error"})

    # -- GraphQL -------------------------------------------------------------------------

    def _graphql(self, body: bytes) -> Answer:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return Answer(400, {"message": "Problems parsing JSON",
                                "documentation_url": "https://docs.github.com/graphql"})
        if not isinstance(request, dict) or not isinstance(request.get("query"), str):
            return Answer(400, {"message": "Body should be a JSON object",
                                "documentation_url": "https://docs.github.com/graphql"})
        if self.access == "none":
            return Answer(200, {"data": {"repository": None}, "errors": [{
                "type": "NOT_FOUND", "path": ["repository"],
                "message": f"Could not resolve to a Repository with the name "
                           f"'{self.full_name}'."}]})
        return Answer(200, self.graphql.execute(request["query"], request.get("variables"),
                                                request.get("operationName")))

    # -- REST -----------------------------------------------------------------------------

    def _rest(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
              headers: Mapping[str, str]) -> Answer:
        repo_prefix = f"/repos/{self.owner}/{self.name}"
        if path == "/rate_limit":
            return Answer(200, self._rate_limit_body())
        elsewhere = self.catalogue_api.route(method, path, query, headers)
        if elsewhere is not None:
            return elsewhere
        if not path.startswith(repo_prefix) or self.access == "none":
            raise Refused(404, "Not Found", documentation_url="https://docs.github.com/rest")
        rest = path[len(repo_prefix):]
        payload = self._json(body) if method in ("POST", "PUT", "PATCH") else {}
        if method != "GET" and self.access == "read":
            raise Refused(403, "Resource not accessible by personal access token",
                          documentation_url="https://docs.github.com/rest")
        for pattern, route_method, handler in self._routes():
            found = re.fullmatch(pattern, rest)
            if found and route_method == method:
                answer = handler(query, payload, *found.groups())
                self.state.settle()
                return answer
        raise Refused(404, "Not Found", documentation_url="https://docs.github.com/rest")

    def _routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        return [
            (r"", "GET", lambda q, p: Answer(200, payloads.repository(self.state, self.urls))),
            (r"/pulls", "GET", self._list_pulls),
            (r"/pulls", "POST", self._create_pull),
            (r"/pulls/(\d+)", "GET", self._get_pull),
            (r"/pulls/(\d+)", "PATCH", self._update_pull),
            (r"/pulls/(\d+)/files", "GET", self._pull_files),
            (r"/pulls/(\d+)/merge", "PUT", self._merge_pull),
            (r"/pulls/(\d+)/reviews", "POST", self._review),
            (r"/issues/(\d+)/comments", "POST", self._comment),
            (r"/issues/(\d+)/labels", "POST", self._add_labels),
            (r"/commits/([^/]+)/check-runs", "GET", self._check_runs),
            (r"/commits/([^/]+)/status", "GET", self._status),
            (r"/commits", "GET", self._commits),
            (r"/git/refs/heads/(.+)", "DELETE", self._delete_branch),
        ]

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            raise Refused(400, "Problems parsing JSON") from None
        if not isinstance(parsed, dict):
            raise Refused(400, "Body should be a JSON object")
        return parsed

    def _rate_limit_body(self) -> dict[str, Any]:
        resources = {name: {"limit": lim.limit, "used": lim.used, "remaining": lim.remaining,
                            "reset": lim.reset} for name, lim in self.limits.items()}
        return {"resources": resources, "rate": resources["core"]}

    def _page(self, items: list[Any], query: Mapping[str, list[str]], path: str) -> Answer:
        """One page of ``items`` with GitHub's Link header (per_page default 30, max 100)."""
        return paged(items, query, self.api_url + path)

    def _list_pulls(self, query: dict[str, list[str]], _payload: Any) -> Answer:
        wanted = param(query, "state") or "open"
        head = param(query, "head")
        base = param(query, "base")
        chosen = [p for p in sorted(self.state.pulls.values(), key=lambda p: p.number,
                                    reverse=True)
                  if (wanted == "all" or p.state == wanted)
                  and (head is None or f"{self.owner}:{p.head}" == head)
                  and (base is None or p.base == base)]
        items = [payloads.pull_simple(self.state, p, self.urls) for p in chosen]
        return self._page(items, query, f"/repos/{self.full_name}/pulls")

    def _create_pull(self, _query: Any, payload: dict[str, Any]) -> Answer:
        missing = [f for f in ("head", "base") if not isinstance(payload.get(f), str)]
        if missing or not isinstance(payload.get("title"), str):
            field = (missing or ["title"])[0]
            raise Refused(422, "Validation Failed", errors=[
                {"resource": "PullRequest", "field": field, "code": "missing_field"}])
        pull = self.state.create_pull(head=payload["head"], base=payload["base"],
                                      title=payload["title"], body=payload.get("body") or "")
        body = payloads.pull_full(self.state, pull, self.urls)
        return Answer(201, body, {"Location": body["url"]})

    def _get_pull(self, _query: Any, _payload: Any, number: str) -> Answer:
        pull = self.state.pull(int(number))
        return Answer(200, payloads.pull_full(self.state, pull, self.urls))

    def _update_pull(self, _query: Any, payload: dict[str, Any], number: str) -> Answer:
        pull = self.state.pull(int(number))
        if payload.get("state") == "closed":
            self.state.close(pull)
        elif payload.get("state") == "open" and pull.state == "closed" and not pull.merged:
            pull.state, pull.closed_at = "open", None
        for field in ("title", "body"):
            if isinstance(payload.get(field), str):
                setattr(pull, field, payload[field])
        self.state.touch(pull)
        return Answer(200, payloads.pull_full(self.state, pull, self.urls))

    def _pull_files(self, query: dict[str, list[str]], _payload: Any, number: str) -> Answer:
        pull = self.state.pull(int(number))
        entries = [payloads.diff_entry(e, pull.head_sha, self.urls)
                   for e in self.state.files(pull)]
        return self._page(entries, query, f"/repos/{self.full_name}/pulls/{number}/files")

    def _merge_pull(self, _query: Any, payload: dict[str, Any], number: str) -> Answer:
        pull = self.state.pull(int(number))
        method = payload.get("merge_method", "merge")
        if method != "squash":
            raise Refused(405, f"Merge method {method} is not allowed on this repository",
                          documentation_url="https://docs.github.com/rest/pulls/pulls"
                                            "#merge-a-pull-request")
        sha = self.state.squash_merge(pull, sha=payload.get("sha"),
                                      title=payload.get("commit_title"),
                                      message=payload.get("commit_message"),
                                      by=self.state.viewer)
        return Answer(200, {"sha": sha, "merged": True,
                            "message": "Pull Request successfully merged"})

    def _review(self, _query: Any, payload: dict[str, Any], number: str) -> Answer:
        pull = self.state.pull(int(number))
        event = payload.get("event", "PENDING")
        if event in ("APPROVE", "REQUEST_CHANGES") and pull.user == self.state.viewer:
            verb = "approve" if event == "APPROVE" else "request changes on"
            raise Refused(422, "Unprocessable Entity", errors=[
                f"Review Can not {verb} your own pull request"])
        review = payloads.review(self.next_id(), payload.get("body") or "", event,
                                 self.state.viewer, pull.number, pull.head_sha, self.urls)
        pull.reviews.append(review)
        self.state.touch(pull)
        return Answer(200, review)

    def _comment(self, _query: Any, payload: dict[str, Any], number: str) -> Answer:
        pull = self.state.pull(int(number))
        if not isinstance(payload.get("body"), str):
            raise Refused(422, "Validation Failed", errors=[
                {"resource": "IssueComment", "field": "body", "code": "missing_field"}])
        comment = payloads.issue_comment(self.next_id(), payload["body"], self.state.viewer,
                                         pull.number, self.urls)
        pull.comments.append(comment)
        self.state.touch(pull)
        return Answer(201, comment, {"Location": comment["url"]})

    def _add_labels(self, _query: Any, payload: dict[str, Any], number: str) -> Answer:
        pull = self.state.pull(int(number))
        names = payload.get("labels")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise Refused(422, "Validation Failed", errors=[
                {"resource": "Label", "field": "labels", "code": "invalid"}])
        for name in names:
            if name not in pull.labels:
                pull.labels.append(name)
        self.state.touch(pull)
        return Answer(200, payloads.labels(pull.labels, self.urls))

    def _resolve(self, ref: str) -> str:
        sha = self.repo.branch_sha(ref) or (ref if re.fullmatch(r"[0-9a-f]{40}", ref) else None)
        if sha is None:
            raise Refused(422, f"No commit found for SHA: {ref}",
                          documentation_url="https://docs.github.com/rest/commits/commits")
        return sha

    def _check_runs(self, query: dict[str, list[str]], _payload: Any, ref: str) -> Answer:
        sha = self._resolve(ref)
        runs = [payloads.check_run(r, self.urls) for r in self.state.check_runs.get(sha, [])]
        answer = self._page(runs, query, f"/repos/{self.full_name}/commits/{ref}/check-runs")
        answer.body = {"total_count": len(runs), "check_runs": answer.body}
        return answer

    def _status(self, _query: Any, _payload: Any, ref: str) -> Answer:
        return Answer(200, payloads.combined_status(self.state, self._resolve(ref), self.urls))

    def _commits(self, query: dict[str, list[str]], _payload: Any) -> Answer:
        return commits(self.repo, query, f"{self.api_url}/repos/{self.full_name}/commits",
                       self.urls)

    def _delete_branch(self, _query: Any, _payload: Any, branch: str) -> Answer:
        if not self.repo.delete_branch(branch) or branch == self.state.base_branch:
            raise Refused(422, "Reference does not exist", documentation_url=(
                "https://docs.github.com/rest/git/refs#delete-a-reference"))
        return Answer(204)

    # -- git over HTTP ------------------------------------------------------------------

    def handle_git(self, method: str, path: str, query: str, headers: Mapping[str, str],
                   body: bytes) -> Answer:
        import base64

        scheme, _, encoded = (headers.get("authorization") or "").partition(" ")
        user, password = "", ""
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                user, _, password = base64.b64decode(encoded).decode().partition(":")
        if password != self.token or self.access == "none":
            return Answer(401, b"Unauthorized\n", {
                "WWW-Authenticate": 'Basic realm="GitHub"', "Content-Type": "text/plain"})
        answer = git_http_backend(project_root=self.git_root, method=method, path_info=path,
                                  query=query, body=body, headers=headers,
                                  remote_user=user or "x-access-token")
        if path.endswith("/git-receive-pack"):
            with self.state.lock:
                self.state.settle()  # pull requests follow their pushed branches
        return Answer(answer.status, answer.body, dict(answer.headers))


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, indent=2).encode()


class _Handler(BaseHTTPRequestHandler):
    hub: LoopbackGitHub
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the hub's request log is the record

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return b"".join(self._chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self._body()
        hub = self.hub
        git_prefix = f"/{hub.owner}/{hub.name}.git/"
        if split.path.startswith(git_prefix) or split.path.startswith("/" + hub.owner + "/"):
            answer, resource, counted = hub.handle_git(
                self.command, split.path, split.query, headers, body), "git", False
        elif split.path.startswith("/api/"):
            answer, resource, counted = hub.handle_api(
                self.command, split.path, parse_qs(split.query), headers, body)
        else:
            answer, resource, counted = Answer(404, {"message": "Not Found"}), "core", False
        hub.record(RecordedRequest(
            self.command, self.path, answer.status, resource, counted,
            {k: v for k, v in headers.items() if k != "authorization"}, body, time.time()))
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        data = b"" if answer.body is None else _encode(answer.body)
        self.send_response(answer.status)
        headers = {"X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(), **answer.headers}
        if answer.body is not None and not isinstance(answer.body, bytes):
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            headers.setdefault("X-GitHub-Media-Type", "github.v3; format=json")
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
