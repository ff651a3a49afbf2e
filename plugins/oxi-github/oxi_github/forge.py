"""The `github` forge: oxi's pull requests on GitHub or GitHub Enterprise Server.

Pull requests oxi opens carry the label `oxi` and a marker naming their task in the body, so
`list_open_prs` returns only oxi's. Observing costs one conditional list call per tick (a 304
when nothing changed, which GitHub does not count) and one GraphQL query for the open pull
requests' checks, mergeability and auto-merge; a pull request's files are fetched once per head
commit and remembered. Auto-merge is armed with GraphQL (`SQUASH`, guarded by the head commit);
a repository with a merge queue gets its pull requests enqueued instead.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from oxi_core.errors import (
    AutoMergeUnavailable,
    ConfigError,
    ForgeSetupError,
    ForgeUnavailable,
    OxiError,
)
from oxi_core.models import (
    ChecksState,
    ForgeNotice,
    ForgeReport,
    MergeAttempt,
    PullRequest,
    PullRequestState,
)
from oxi_core.protocols import PluginContext
from oxi_github import queries
from oxi_github.cache import shared_cache
from oxi_github.client import GitHubClient, GitHubError, GraphQLError
from oxi_github.git_auth import credential_env
from oxi_github.token import Token, token_for_api

if TYPE_CHECKING:
    from oxi_core.doctor import Finding

MAX_FILES = 3000  # GitHub lists at most 3,000 files of a pull request
MERGE_QUEUE_MODES = ("auto", "on", "off")
_MARKER = re.compile(r"<!-- oxi:task (?P<task>T\d+-\d+) -->")
_TITLE_TASK = re.compile(r"^(?P<task>T\d+-\d+):")
_REMOTE_REPOSITORY = re.compile(r"[:/](?P<owner>[^/:]+)/(?P<name>[^/]+?)(?:\.git)?/?$")
_SUCCESSFUL = frozenset({"success", "neutral", "skipped"})
_ROLLUP = {"SUCCESS": ChecksState.PASSING, "FAILURE": ChecksState.FAILING,
           "ERROR": ChecksState.FAILING, "PENDING": ChecksState.PENDING,
           "EXPECTED": ChecksState.PENDING}


def task_marker(task_id: str) -> str:
    return f"<!-- oxi:task {task_id} -->"


@attrs.define
class GitHubForge:
    """oxi.toml: `[forges.github] type = "github"`, kwargs below (all optional)."""

    repository: str = ""  # "owner/name"; default: read from the remote's URL
    token: str = attrs.field(default="", repr=False)  # write { env = "NAME" }, never the token
    api_url: str = "https://api.github.com"  # GitHub Enterprise Server: https://HOST/api/v3
    graphql_url: str = ""  # default: beside api_url (/graphql, or /api/graphql for GHES)
    base: str = "main"  # the branch pull requests merge into
    remote: str = "origin"  # the git remote that is this repository on GitHub
    label: str = "oxi"  # the label on the pull requests oxi opens (how it finds its own)
    merge_queue: str = "auto"  # "auto" (ask GitHub), "on", "off"
    delete_merged_branches: bool = True  # delete a pull request's branch once it merged
    timeout_s: float = 30.0  # seconds a request may take
    max_attempts: int = 3  # tries for a request that failed in transit or with a 5xx
    backoff_s: float = 1.0  # the first retry's delay (it doubles)
    max_wait_s: float = 10.0  # a secondary rate limit this short is waited out in the call
    # The open pull requests' checks and mergeability (one GraphQL query) are asked again
    # after this long, or at once when the list of them changed.
    checks_max_age_s: float = 10.0
    _context: PluginContext | None = attrs.field(default=None, init=False, repr=False)
    _client: GitHubClient | None = attrs.field(default=None, init=False, repr=False)
    _token: Token | None = attrs.field(default=None, init=False, repr=False)
    _open: dict[int, PullRequest] = attrs.field(factory=dict, init=False, repr=False)
    _notices: list[ForgeNotice] = attrs.field(factory=list, init=False, repr=False)
    _status: tuple[Any, float, dict[int, dict[str, Any]]] | None = attrs.field(
        default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.merge_queue not in MERGE_QUEUE_MODES:
            raise ValueError(f"merge_queue must be one of {', '.join(MERGE_QUEUE_MODES)}, "
                             f"not {self.merge_queue!r}")
        if self.repository and not re.fullmatch(r"[^/\s]+/[^/\s]+", self.repository):
            raise ValueError(f"repository must read owner/name, not {self.repository!r}")

    def bind(self, context: PluginContext) -> None:
        self._context = context

    # -- set-up -------------------------------------------------------------------------

    @property
    def context(self) -> PluginContext:
        if self._context is None:
            raise OxiError("the github forge is not bound to a repository",
                           hint="build it through oxi.toml (load_config), which binds it")
        return self._context

    def remote_url(self) -> str:
        result = subprocess.run(["git", "remote", "get-url", self.remote],
                                cwd=self.context.paths.repo_root, capture_output=True,
                                text=True, check=False, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise ConfigError(f"the repository has no remote {self.remote!r}",
                              table="forges.github", key="kwargs.remote",
                              hint="add the GitHub remote (git remote add origin URL)")
        return result.stdout.strip()

    @property
    def owner_and_name(self) -> tuple[str, str]:
        if self.repository:
            owner, _, name = self.repository.partition("/")
            return owner, name
        found = _REMOTE_REPOSITORY.search(self.remote_url())
        if found is None:
            raise ConfigError(f"cannot read owner/name from the remote {self.remote!r}",
                              table="forges.github", key="kwargs.repository",
                              hint='set repository = "owner/name"')
        return found["owner"], found["name"]

    @property
    def full_name(self) -> str:
        return "/".join(self.owner_and_name)

    @property
    def token_value(self) -> Token:
        if self._token is None:
            self._token = token_for_api(self.api_url, self.token,
                                        "the github forge's `token` kwarg in oxi.toml")
        return self._token

    @property
    def client(self) -> GitHubClient:
        if self._client is None:
            self._client = GitHubClient(
                api_url=self.api_url, graphql_url=self.graphql_url or None,
                token=self.token_value, cache=shared_cache(self.context.paths.state_dir),
                timeout_s=self.timeout_s, max_attempts=self.max_attempts,
                backoff_s=self.backoff_s, max_wait_s=self.max_wait_s)
        return self._client

    @property
    def _repo_path(self) -> str:
        return f"/repos/{self.full_name}"

    def _access(self, error: GitHubError) -> OxiError:
        """403/404 on the repository itself: the token cannot see or change it."""
        return ForgeSetupError(
            f"the token from {self.token_value.origin} lacks access to {self.full_name} "
            f"(GitHub answered {error.status}: {error.api_message})",
            hint="a fine-grained token needs this repository with Contents and Pull requests "
                 "read and write, and Checks read (docs/runbooks/github.md)")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST call whose 403/404 means the token lacks access to the repository."""
        try:
            return self.client.request(method, path, **kwargs).body
        except GitHubError as error:
            if error.status in (403, 404):
                raise self._access(error) from error
            raise

    # -- the Forge protocol ---------------------------------------------------------------

    def open_pr(self, *, task_id: str, branch: str, title: str, body: str) -> PullRequest:
        marked = f"{body}\n\n{task_marker(task_id)}"
        try:
            created = self._call("POST", f"{self._repo_path}/pulls", json_body={
                "head": branch, "base": self.base, "title": title, "body": marked,
                "maintainer_can_modify": False})
        except GitHubError as error:
            if error.status != 422 or not any(
                "already exists" in str(e) for e in [error.api_message, *error.errors]
            ):
                raise
            created = self._adopt(branch, title, marked)
        if self.label not in [label.get("name") for label in created.get("labels", [])]:
            self._call("POST", f"{self._repo_path}/issues/{created['number']}/labels",
                       json_body={"labels": [self.label]})
        pr = self._pull_request(created)
        self._open[pr.number] = pr
        return pr

    def _adopt(self, branch: str, title: str, body: str) -> dict[str, Any]:
        """The open pull request that already exists for ``branch``, brought up to date."""
        owner, _ = self.owner_and_name
        found = self.client.paginate(f"{self._repo_path}/pulls", {
            "state": "open", "head": f"{owner}:{branch}", "base": self.base})
        if not found:
            raise OxiError(f"GitHub says a pull request exists for {branch} but lists none",
                           hint="the next attempt tries again")
        number = found[0]["number"]
        if found[0].get("auto_merge") is not None:
            # Armed for an earlier head: the head pushed now has not been reviewed yet.
            self.client.graphql(queries.DISABLE_AUTO_MERGE, {"pullRequestId": found[0]["node_id"]})
        adopted: dict[str, Any] = self._call("PATCH", f"{self._repo_path}/pulls/{number}",
                                             json_body={"title": title, "body": body})
        return adopted

    def get_pr(self, number: int) -> PullRequest:
        try:
            body = self._call("GET", f"{self._repo_path}/pulls/{number}")
        except ForgeUnavailable:
            known = self._open.get(number)
            if known is None:
                raise
            return known  # what the last look saw: the tick goes on with what it knows
        return self._pull_request(body)

    def list_open_prs(self) -> list[PullRequest]:
        listing = (f"{self._repo_path}/pulls", {"state": "open", "base": self.base})
        try:
            items = self.client.paginate(*listing)
        except ForgeUnavailable as error:
            # A rate limit or an outage: carry on with the last list seen (this process's, or
            # the one the cache kept from an earlier tick), and say so.
            known = self.client.last_known(*listing)
            if known is None:
                raise
            self._notices.append(ForgeNotice(
                "stale", f"open pull requests as last seen, not asked now: {error}"))
            return [self._pull_request(item, known_only=True) for item in known
                    if self._is_ours(item)]
        except GitHubError as error:
            if error.status in (403, 404):
                raise self._access(error) from error
            raise
        ours = [item for item in items if self._is_ours(item)]
        prs = [self._pull_request(item, self._status_of(ours).get(item["number"]))
               for item in ours]
        self._open = {pr.number: pr for pr in prs}
        return prs

    def _status_of(self, ours: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """The GraphQL status of the open pull requests, asked again only when the list
        changed or the last answer is older than ``checks_max_age_s`` (`oxi tick` observes
        before and after its workers, often within a second: once is enough)."""
        if not ours:
            return {}
        key = tuple(sorted((item["number"], item["head"]["sha"], item.get("updated_at"))
                           for item in ours))
        now = time.monotonic()
        if self._status is not None and self._status[0] == key and (
            now - self._status[1] < self.checks_max_age_s
        ):
            return self._status[2]
        found = self._open_state()
        self._status = (key, now, found)
        return found

    def merged_prs(self, since: datetime) -> list[PullRequest]:
        """Pull requests merged at or after ``since``, oldest first, with their bodies (what
        auto-improve reads as the repository's recent history)."""
        found: list[PullRequest] = []
        page = 1
        while True:
            items = self.client.get(f"{self._repo_path}/pulls", {
                "state": "closed", "base": self.base, "sort": "updated", "direction": "desc",
                "per_page": 100, "page": page})
            for item in items:
                merged_at = item.get("merged_at")
                if merged_at and datetime.fromisoformat(merged_at) >= since:
                    found.append(attrs.evolve(self._pull_request(item, known_only=True),
                                              body=item.get("body") or "",
                                              merged_at=datetime.fromisoformat(merged_at)))
            oldest = items[-1].get("updated_at") if items else None
            if len(items) < 100 or oldest is None or datetime.fromisoformat(oldest) < since:
                break
            page += 1
        return sorted(found, key=lambda pr: pr.merged_at or since)

    def arm_auto_merge(self, number: int) -> bool:
        body = self._call("GET", f"{self._repo_path}/pulls/{number}")
        pr = self._pull_request(body)
        if pr.state is not PullRequestState.OPEN or pr.auto_merge_armed:
            return False
        if self._uses_merge_queue():
            self.client.graphql(queries.ENQUEUE, {"pullRequestId": body["node_id"],
                                                  "expectedHeadOid": pr.head_sha})
            self.client.cache.remember(f"queued:{number}:{pr.head_sha}", True)
            return True
        try:
            self.client.graphql(queries.ENABLE_AUTO_MERGE, {
                "pullRequestId": body["node_id"], "mergeMethod": "SQUASH",
                "expectedHeadOid": pr.head_sha})
        except GraphQLError as error:
            text = " ".join(error.messages)
            if "Auto merge is not allowed" in text:
                raise AutoMergeUnavailable(
                    f"{self.full_name}: {text}",
                    hint="turn on 'Allow auto-merge' in the repository's settings, or set "
                         '[engine] auto_merge_fallback = "direct"') from error
            if "Protected branch rules not configured" in text:
                raise AutoMergeUnavailable(
                    f"{self.full_name}: {text}",
                    hint=f"protect {self.base} with required status checks, or set "
                         '[engine] auto_merge_fallback = "direct"') from error
            if "clean status" in text or "unstable status" in text:
                # Nothing left to wait for (required checks passed): merge now, guarded by
                # the head commit, as `gh pr merge --auto` does.
                return self._merge(number, pr, body).merged
            raise
        return True

    def close_pr(self, number: int, comment: str) -> None:
        self.comment(number, comment)
        self.client.cache.remember(f"closed_by_oxi:{number}", comment)
        self._call("PATCH", f"{self._repo_path}/pulls/{number}", json_body={"state": "closed"})
        self._open.pop(number, None)

    def comment(self, number: int, body: str) -> None:
        self._call("POST", f"{self._repo_path}/issues/{number}/comments",
                   json_body={"body": body})

    # -- what the engine asks beyond the protocol (oxi_core.protocols.ForgeExtras) -------

    def review(self, number: int, body: str) -> None:
        """The critic's findings as a pull request review (a comment review: GitHub does not
        let a pull request's author approve it or request changes on it)."""
        self._call("POST", f"{self._repo_path}/pulls/{number}/reviews",
                   json_body={"body": body, "event": "COMMENT"})

    def merge_now(self, number: int, *, head_sha: str) -> MergeAttempt:
        """A guarded direct squash merge: only ``head_sha``, only when the checks are green."""
        body = self._call("GET", f"{self._repo_path}/pulls/{number}")
        pr = self._pull_request(body)
        if pr.state is PullRequestState.CONFLICTED:
            return MergeAttempt(False, pr, "not mergeable: it conflicts with " + self.base)
        if pr.state is not PullRequestState.OPEN:
            return MergeAttempt(pr.state is PullRequestState.MERGED, pr,
                                "" if pr.state is PullRequestState.MERGED else "not open")
        if head_sha and pr.head_sha != head_sha:
            return MergeAttempt(False, pr, f"the head moved to {pr.head_sha[:12]}")
        checks, detail = self.checks_of(pr.head_sha)
        if checks is ChecksState.PENDING:
            return MergeAttempt(False, pr, f"checks pending: {detail}")
        if checks is ChecksState.FAILING:
            return MergeAttempt(False, pr, f"checks failing: {detail}")
        return self._merge(number, pr, body)

    def _merge(self, number: int, pr: PullRequest, body: Mapping[str, Any]) -> MergeAttempt:
        try:
            self._call("PUT", f"{self._repo_path}/pulls/{number}/merge", json_body={
                "merge_method": "squash", "sha": pr.head_sha,
                "commit_title": f"{body['title']} (#{number})"})
        except GitHubError as error:
            if error.status in (405, 409):
                return MergeAttempt(False, pr, error.api_message)
            raise
        merged = self.get_pr(number)
        self._open.pop(number, None)
        return MergeAttempt(merged.state is PullRequestState.MERGED, merged)

    def checks_of(self, sha: str) -> tuple[ChecksState, str]:
        """Check runs and the combined status of ``sha`` (REST, conditional requests)."""
        runs = self.client.paginate(f"{self._repo_path}/commits/{sha}/check-runs",
                                    item_key="check_runs")
        combined = self.client.get(f"{self._repo_path}/commits/{sha}/status")
        pending = [r["name"] for r in runs if r.get("status") != "completed"]
        failing = [r["name"] for r in runs
                   if r.get("status") == "completed" and r.get("conclusion") not in _SUCCESSFUL]
        for status in combined.get("statuses") or []:
            if status.get("state") == "pending":
                pending.append(status.get("context", "status"))
            elif status.get("state") in ("failure", "error"):
                failing.append(status.get("context", "status"))
        if failing:
            return ChecksState.FAILING, ", ".join(failing)
        if pending:
            return ChecksState.PENDING, ", ".join(pending)
        if not runs and not combined.get("statuses"):
            return ChecksState.NONE, "no checks"
        return ChecksState.PASSING, "all green"

    def disarm_auto_merge(self, number: int) -> bool:
        body = self._call("GET", f"{self._repo_path}/pulls/{number}")
        if body.get("auto_merge") is None:
            return False
        self.client.graphql(queries.DISABLE_AUTO_MERGE, {"pullRequestId": body["node_id"]})
        return True

    def delete_branch(self, branch: str) -> None:
        if not self.delete_merged_branches:
            return
        try:
            self.client.request("DELETE", f"{self._repo_path}/git/refs/heads/{branch}")
        except GitHubError as error:
            if error.status != 422:  # 422: already gone (GitHub deleted it after the merge)
                raise

    def git_env(self) -> dict[str, str]:
        """Credentials for git's fetch and push to the remote (see git_auth)."""
        return credential_env(self.remote_url(), self.token_value)

    def take_report(self) -> ForgeReport:
        if self._client is None:
            notices, self._notices = self._notices, []
            return ForgeReport(notices=tuple(notices))
        stats = self._client.take_stats()
        notices = [*(ForgeNotice(n.kind, n.message, n.details) for n in stats.notices),
                   *self._notices]
        self._notices = []
        return ForgeReport(requests=stats.requests, counted=stats.counted,
                           details=stats.as_payload(), notices=tuple(notices))

    def diagnose(self, deep: bool) -> Iterator[Finding]:
        """`oxi config check` (offline): a token is found and the repository is named.
        `oxi doctor` (deep) also asks GitHub: the token works, reaches the repository, may
        push, and auto-merge is allowed."""
        from oxi_core.doctor import Finding

        where = "[forges.github]"
        try:
            token = self.token_value
            full_name = self.full_name
        except OxiError as error:
            yield Finding.error(where, error.message, error.hint or "see the message")
            return
        if not urlsplit(self.remote_url()).scheme.startswith("http"):
            yield Finding.warning(
                f"{where} kwargs.remote", f"{self.remote} is not an https URL: git pushes with "
                "its own credentials (SSH keys), not the forge's token",
                "use the https URL of the repository to push with the token")
        if not deep:
            return
        try:
            repository = self._call("GET", self._repo_path)
        except OxiError as error:
            yield Finding.error(where, error.message, error.hint or "see the message")
            return
        permissions = repository.get("permissions") or {}
        if permissions and not permissions.get("push"):
            yield Finding.error(where, f"the token from {token.origin} cannot push to "
                                       f"{full_name}",
                                "give it Contents: read and write (docs/runbooks/github.md)")
        if repository.get("allow_auto_merge") is False:
            yield Finding.warning(
                where, f"{full_name} does not allow auto-merge: approved pull requests wait "
                       "for a person", "turn on 'Allow auto-merge' in the repository's "
                "settings, or set [engine] auto_merge_fallback = \"direct\"")

    # -- reading GitHub's answers -------------------------------------------------------

    def _is_ours(self, item: Mapping[str, Any]) -> bool:
        labels = [label.get("name") for label in item.get("labels") or []]
        return self.label in labels or bool(_MARKER.search(item.get("body") or ""))

    def _open_state(self) -> dict[int, dict[str, Any]]:
        """Checks, mergeability and auto-merge of every open pull request: one GraphQL query
        (more only past 100 open pull requests). Without it (a rate limit) they stay unknown."""
        owner, name = self.owner_and_name
        found: dict[int, dict[str, Any]] = {}
        after: str | None = None
        try:
            while True:
                data = self.client.graphql(queries.OPEN_PULL_REQUESTS, {
                    "owner": owner, "name": name, "base": self.base, "after": after})
                connection = (data.get("repository") or {}).get("pullRequests") or {}
                for node in connection.get("nodes") or []:
                    if node:
                        found[int(node["number"])] = node
                page = connection.get("pageInfo") or {}
                if not page.get("hasNextPage"):
                    return found
                after = page.get("endCursor")
        except (ForgeUnavailable, GitHubError) as error:
            self._notices.append(ForgeNotice("checks_unknown", f"checks not read: {error}"))
            return found

    def _files(self, number: int, head_sha: str) -> tuple[str, ...]:
        """The pull request's files at ``head_sha``: asked once per head, then remembered."""
        key = f"files:{number}:{head_sha}"
        known = self.client.cache.fact(key)
        if known is not None:
            return tuple(known)
        entries = self.client.paginate(f"{self._repo_path}/pulls/{number}/files",
                                       limit=MAX_FILES)
        names: set[str] = set()
        for entry in entries:
            names.add(entry["filename"])
            if entry.get("previous_filename"):
                names.add(entry["previous_filename"])
        if len(entries) >= MAX_FILES:
            self._notices.append(ForgeNotice(
                "files_truncated", f"#{number} changes {MAX_FILES} files or more: GitHub lists "
                                   f"only the first {MAX_FILES}", {"pr": number}))
        self.client.cache.forget(f"files:{number}:")
        files = tuple(sorted(names))
        self.client.cache.remember(key, list(files))
        return files

    def _uses_merge_queue(self) -> bool:
        if self.merge_queue != "auto":
            return self.merge_queue == "on"
        key = f"merge_queue:{self.full_name}:{self.base}"
        known = self.client.cache.fact(key)
        if known is None:
            owner, name = self.owner_and_name
            data = self.client.graphql(queries.MERGE_QUEUE,
                                       {"owner": owner, "name": name, "branch": self.base})
            known = bool((data.get("repository") or {}).get("mergeQueue"))
            self.client.cache.remember(key, known)
        return bool(known)

    def _pull_request(self, item: Mapping[str, Any], extra: Mapping[str, Any] | None = None,
                      *, known_only: bool = False) -> PullRequest:
        """oxi's view of GitHub's pull request JSON (``extra``: what the GraphQL status query
        said about it). ``known_only``: files only as remembered, no request for them."""
        number = int(item["number"])
        head_sha = item["head"]["sha"]
        body = item.get("body") or ""
        marker = _MARKER.search(body) or _TITLE_TASK.search(item.get("title") or "")
        mergeable = item.get("mergeable")
        checks = ChecksState.UNKNOWN
        armed = item.get("auto_merge") is not None or bool(
            self.client.cache.fact(f"queued:{number}:{head_sha}"))
        if extra is not None and extra.get("headRefOid") == head_sha:
            mergeable = {"MERGEABLE": True, "CONFLICTING": False}.get(extra.get("mergeable", ""))
            armed = armed or extra.get("autoMergeRequest") is not None or (
                extra.get("mergeQueueEntry") is not None)
            commits = (extra.get("commits") or {}).get("nodes") or []
            rollup = ((commits[-1] or {}).get("commit") or {}).get("statusCheckRollup") if (
                commits) else None
            checks = ChecksState.NONE if rollup is None else _ROLLUP.get(
                rollup.get("state", ""), ChecksState.UNKNOWN)
        state = PullRequestState.OPEN
        closed_reason = ""
        if item.get("merged") or item.get("merged_at"):
            state = PullRequestState.MERGED
        elif item.get("state") == "closed":
            state = PullRequestState.CLOSED
            by_oxi = self.client.cache.fact(f"closed_by_oxi:{number}")
            closed_reason = by_oxi or "closed on GitHub without merging"
        elif mergeable is False:
            state = PullRequestState.CONFLICTED
            closed_reason = f"merge conflict with {item['base']['ref']} on GitHub"
        if state in (PullRequestState.OPEN, PullRequestState.CONFLICTED) and not known_only:
            files = self._files(number, head_sha)
        else:  # a finished pull request's files matter no more: only what is known
            files = tuple(self.client.cache.fact(f"files:{number}:{head_sha}") or ())
        return PullRequest(
            number=number, branch=item["head"]["ref"], base=item["base"]["ref"],
            title=item.get("title") or "", state=state,
            task_id=marker["task"] if marker else None, files=files,
            auto_merge_armed=armed and state in (PullRequestState.OPEN,
                                                 PullRequestState.CONFLICTED),
            head_sha=head_sha,
            merged_sha=item.get("merge_commit_sha") if state is PullRequestState.MERGED
            else None, url=item.get("html_url") or "", closed_reason=closed_reason,
            checks=checks, mergeable=mergeable)
