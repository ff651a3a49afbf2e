"""What the loopback GitHub knows about its one repository: settings, pull requests, checks.

Every rule GitHub applies that oxi depends on lives here, computed with real git in the bare
repository: a pull request's files, its mergeability, auto-merge merging once the required
checks pass, a merge queue, squash merges guarded by the head's sha.
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime
from typing import Any

import attrs

from oxi_github.testing.bare import BareRepository, DiffEntry

MAX_FILES = 3000  # GitHub lists at most 3,000 files of a pull request
SUCCESSFUL = frozenset({"success", "neutral", "skipped"})


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode()


class Refused(Exception):
    """A request GitHub would refuse: the status and the message it answers with."""

    def __init__(self, status: int, message: str, *, errors: list[Any] | None = None,
                 documentation_url: str = "https://docs.github.com/rest") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.documentation_url = documentation_url


@attrs.define
class Settings:
    """The repository's settings, as an administrator would set them on GitHub."""

    allow_auto_merge: bool = True
    branch_protection: bool = True  # on the base branch, requiring `required_checks`
    required_checks: tuple[str, ...] = ("ci",)
    # Every new head gets a check run per required check: "success", "failure", "pending"
    # (in progress until set_check), or None for no check runs at all.
    checks_on_push: str | None = "success"
    merge_queue: bool = False
    delete_branch_on_merge: bool = False
    private: bool = True


@attrs.define
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str  # queued, in_progress, completed
    conclusion: str | None
    started_at: str
    completed_at: str | None


@attrs.define
class CommitStatus:
    id: int
    context: str
    state: str  # error, failure, pending, success
    description: str
    created_at: str


@attrs.define
class PullRecord:
    number: int
    title: str
    body: str
    head: str
    base: str
    head_sha: str
    user: str
    created_at: str
    updated_at: str
    state: str = "open"
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: str | None = None
    labels: list[str] = attrs.field(factory=list)
    auto_merge: dict[str, Any] | None = None
    queue_entry: dict[str, Any] | None = None
    comments: list[dict[str, Any]] = attrs.field(factory=list)
    reviews: list[dict[str, Any]] = attrs.field(factory=list)

    @property
    def node_id(self) -> str:
        return node_id("PullRequest", self.number)


@attrs.define
class Mergeability:
    mergeable: bool
    state: str  # clean, blocked, unstable, dirty
    conflicts: tuple[str, ...] = ()


class RepositoryState:
    def __init__(self, repo: BareRepository, *, owner: str, name: str, viewer: str) -> None:
        self.repo = repo
        self.owner = owner
        self.name = name
        self.viewer = viewer  # the token's user
        self.settings = Settings()
        self.lock = threading.RLock()
        self.pulls: dict[int, PullRecord] = {}
        self.check_runs: dict[str, list[CheckRun]] = {}
        self.statuses: dict[str, list[CommitStatus]] = {}
        self._diffs: dict[tuple[str, str], list[DiffEntry]] = {}
        self._ids = iter(range(1000, 10**9))
        self._numbers = iter(range(1, 10**9))

    @property
    def base_branch(self) -> str:
        return "main"

    def next_id(self) -> int:
        return next(self._ids)

    def pull(self, number: int) -> PullRecord:
        found = self.pulls.get(number)
        if found is None:
            raise Refused(404, "Not Found",
                          documentation_url="https://docs.github.com/rest/pulls/pulls#get-a-pull-request")
        return found

    # -- pull requests ------------------------------------------------------------------

    def create_pull(self, *, head: str, base: str, title: str, body: str) -> PullRecord:
        owner, _, branch = head.rpartition(":")
        if owner and owner != self.owner:
            raise self._invalid("head")
        head_sha = self.repo.branch_sha(branch)
        if head_sha is None:
            raise self._invalid("head")
        base_sha = self.repo.branch_sha(base)
        if base_sha is None:
            raise self._invalid("base")
        for pull in self.pulls.values():
            if pull.state == "open" and pull.head == branch and pull.base == base:
                raise Refused(422, "Validation Failed", errors=[{
                    "resource": "PullRequest", "code": "custom",
                    "message": f"A pull request already exists for {self.owner}:{branch}."}],
                    documentation_url=CREATE_DOCS)
        if not self.repo.has_commits_between(base_sha, head_sha):
            raise Refused(422, "Validation Failed", errors=[{
                "resource": "PullRequest", "code": "custom",
                "message": f"No commits between {base} and {branch}"}],
                documentation_url=CREATE_DOCS)
        stamp = now_iso()
        pull = PullRecord(number=next(self._numbers), title=title, body=body, head=branch,
                          base=base, head_sha=head_sha, user=self.viewer, created_at=stamp,
                          updated_at=stamp)
        self.pulls[pull.number] = pull
        self._start_checks(head_sha)
        return pull

    def _invalid(self, field: str) -> Refused:
        return Refused(422, "Validation Failed", errors=[
            {"resource": "PullRequest", "field": field, "code": "invalid"}],
            documentation_url=CREATE_DOCS)

    def touch(self, pull: PullRecord) -> None:
        pull.updated_at = now_iso()

    def close(self, pull: PullRecord) -> None:
        if pull.state == "open":
            pull.state = "closed"
            pull.closed_at = now_iso()
            pull.auto_merge = None
            pull.queue_entry = None
            self.touch(pull)

    def files(self, pull: PullRecord) -> list[DiffEntry]:
        base = self.repo.branch_sha(pull.base)
        if base is None:
            return []
        key = (base, pull.head_sha)  # a diff of two commits never changes: computed once
        if key not in self._diffs:
            self._diffs[key] = self.repo.diff_entries(base, pull.head_sha)[:MAX_FILES]
        return self._diffs[key]

    def mergeability(self, pull: PullRecord) -> Mergeability:
        base = self.repo.branch_sha(pull.base)
        if base is None:
            return Mergeability(False, "dirty")
        merged = self.repo.merge(base, pull.head_sha)
        if merged.tree is None:
            return Mergeability(False, "dirty", merged.conflicts)
        checks = self.checks_state(pull.head_sha)
        if checks == "failure" and self.settings.branch_protection:
            return Mergeability(True, "blocked")
        if checks == "pending" and self.settings.branch_protection:
            return Mergeability(True, "blocked")
        if self.any_failing(pull.head_sha):
            return Mergeability(True, "unstable")
        return Mergeability(True, "clean")

    # -- checks -------------------------------------------------------------------------

    def _start_checks(self, sha: str) -> None:
        outcome = self.settings.checks_on_push
        if outcome is None or sha in self.check_runs:
            return
        for name in self.settings.required_checks:
            self.set_check(sha, name, outcome)

    def set_check(self, sha: str, name: str, outcome: str) -> CheckRun:
        """A check run on ``sha``: "pending" (in progress) or a conclusion."""
        runs = self.check_runs.setdefault(sha, [])
        stamp = now_iso()
        done = outcome != "pending"
        for run in runs:
            if run.name == name:
                run.status = "completed" if done else "in_progress"
                run.conclusion = outcome if done else None
                run.completed_at = stamp if done else None
                break
        else:
            run = CheckRun(self.next_id(), name, sha, "completed" if done else "in_progress",
                           outcome if done else None, stamp, stamp if done else None)
            runs.append(run)
        for pull in self.pulls.values():
            if pull.head_sha == sha:
                self.touch(pull)
        return run

    def set_status(self, sha: str, context: str, state: str, description: str = "") -> None:
        self.statuses.setdefault(sha, []).append(
            CommitStatus(self.next_id(), context, state, description, now_iso()))

    def latest_statuses(self, sha: str) -> list[CommitStatus]:
        latest: dict[str, CommitStatus] = {}
        for status in self.statuses.get(sha, []):
            latest[status.context] = status
        return list(latest.values())

    def combined_state(self, sha: str) -> str:
        statuses = self.latest_statuses(sha)
        if any(s.state in ("error", "failure") for s in statuses):
            return "failure"
        if not statuses or any(s.state == "pending" for s in statuses):
            return "pending"
        return "success"

    def any_failing(self, sha: str) -> bool:
        runs = self.check_runs.get(sha, [])
        return any(r.status == "completed" and r.conclusion not in SUCCESSFUL for r in runs) or (
            self.combined_state(sha) == "failure")

    def checks_state(self, sha: str) -> str:
        """The required checks on ``sha``: success, pending or failure (success when the branch
        requires none)."""
        required = self.settings.required_checks if self.settings.branch_protection else ()
        verdicts = []
        runs = {r.name: r for r in self.check_runs.get(sha, [])}
        statuses = {s.context: s for s in self.latest_statuses(sha)}
        for name in required:
            if name in runs:
                run = runs[name]
                verdicts.append("pending" if run.status != "completed" else
                                "success" if run.conclusion in SUCCESSFUL else "failure")
            elif name in statuses:
                state = statuses[name].state
                verdicts.append("failure" if state == "error" else state)
            else:
                verdicts.append("pending")  # expected, not reported yet
        if "failure" in verdicts:
            return "failure"
        return "pending" if "pending" in verdicts else "success"

    def rollup_state(self, sha: str) -> str | None:
        """GraphQL's statusCheckRollup.state over every check run and status of ``sha``."""
        runs = self.check_runs.get(sha, [])
        statuses = self.latest_statuses(sha)
        if not runs and not statuses:
            return None
        states = [("PENDING" if r.status != "completed" else
                   "SUCCESS" if r.conclusion in SUCCESSFUL else "FAILURE") for r in runs]
        states += [{"success": "SUCCESS", "pending": "PENDING", "failure": "FAILURE",
                    "error": "ERROR"}[s.state] for s in statuses]
        for state in ("ERROR", "FAILURE", "PENDING"):
            if state in states:
                return state
        return "SUCCESS"

    # -- merging ------------------------------------------------------------------------

    def squash_merge(self, pull: PullRecord, *, sha: str | None, title: str | None,
                     message: str | None, by: str) -> str:
        if pull.state != "open":
            raise Refused(405, "Pull Request is not mergeable", documentation_url=MERGE_DOCS)
        if sha is not None and sha != pull.head_sha:
            raise Refused(409, "Head branch was modified. Review and try the merge again.",
                          documentation_url=MERGE_DOCS)
        base_sha = self.repo.branch_sha(pull.base)
        state = self.mergeability(pull)
        if base_sha is None or not state.mergeable:
            raise Refused(405, "Pull Request is not mergeable", documentation_url=MERGE_DOCS)
        if state.state == "blocked":
            raise Refused(405, "Required status check \"" + self._blocking_check(pull) +
                          "\" is expected.", documentation_url=MERGE_DOCS)
        merged = self.repo.merge(base_sha, pull.head_sha)
        assert merged.tree is not None
        headline = title or f"{pull.title} (#{pull.number})"
        body = message if message is not None else pull.body
        commit = self.repo.commit_tree(merged.tree, base_sha,
                                       headline + ("\n\n" + body if body else ""))
        if not self.repo.update_branch(pull.base, commit, base_sha):
            raise Refused(405, "Base branch was modified. Review and try the merge again.",
                          documentation_url=MERGE_DOCS)
        stamp = now_iso()
        pull.state, pull.merged, pull.merged_at, pull.closed_at = "closed", True, stamp, stamp
        pull.merged_by, pull.merge_commit_sha = by, commit
        pull.auto_merge = None
        pull.queue_entry = None
        self.touch(pull)
        if self.settings.delete_branch_on_merge:
            self.repo.delete_branch(pull.head)
        return commit

    def _blocking_check(self, pull: PullRecord) -> str:
        runs = {r.name: r for r in self.check_runs.get(pull.head_sha, [])}
        for name in self.settings.required_checks:
            run = runs.get(name)
            if run is None or run.conclusion not in SUCCESSFUL:
                return name
        return "checks"

    def ready_to_merge(self, pull: PullRecord) -> bool:
        state = self.mergeability(pull)
        return state.mergeable and self.checks_state(pull.head_sha) == "success"

    def settle(self) -> None:
        """What GitHub does by itself: follow pushed branches, and merge pull requests whose
        auto-merge (or merge queue entry) waits on checks that have passed."""
        for pull in self.pulls.values():
            if pull.state != "open":
                continue
            head = self.repo.branch_sha(pull.head)
            if head is not None and head != pull.head_sha:
                pull.head_sha = head
                self.touch(pull)
                self._start_checks(head)
        queued = sorted((p for p in self.pulls.values()
                         if p.state == "open" and p.queue_entry is not None),
                        key=lambda p: p.queue_entry["enqueued_at"] if p.queue_entry else 0)
        armed = [p for p in self.pulls.values() if p.state == "open" and p.auto_merge]
        for pull in [*queued, *armed]:
            if pull.state == "open" and self.ready_to_merge(pull):
                title = (pull.auto_merge or {}).get("commit_title")
                self.squash_merge(pull, sha=None, title=title, message=None,
                                  by=(pull.auto_merge or {}).get("enabled_by", self.viewer))

    def enqueue(self, pull: PullRecord) -> dict[str, Any]:
        if pull.queue_entry is None:
            position = 1 + sum(1 for p in self.pulls.values() if p.queue_entry is not None)
            pull.queue_entry = {"id": node_id("MergeQueueEntry", pull.number),
                                "position": position, "state": "QUEUED",
                                "enqueued_at": time.monotonic()}
            self.touch(pull)
        return pull.queue_entry


CREATE_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
MERGE_DOCS = "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request"
