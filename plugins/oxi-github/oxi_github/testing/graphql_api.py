"""The loopback GitHub's GraphQL endpoint: the part of GitHub's public schema oxi uses
(types and field names as in `schema.docs.graphql`), executed by graphql-core against the
loopback's state, with GitHub's error shape (`type`, `path`, `locations`, `message`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oxi_github.testing.state import PullRecord, RepositoryState, now_iso

if TYPE_CHECKING:
    from graphql import GraphQLSchema

SCHEMA_SDL = '''
scalar DateTime
scalar GitObjectID
scalar URI

enum PullRequestState { CLOSED MERGED OPEN }
enum PullRequestMergeMethod { MERGE REBASE SQUASH }
enum MergeableState { CONFLICTING MERGEABLE UNKNOWN }
enum StatusState { ERROR EXPECTED FAILURE PENDING SUCCESS }
enum MergeQueueEntryState { AWAITING_CHECKS LOCKED MERGEABLE QUEUED UNMERGEABLE }

interface Actor {
  avatarUrl(size: Int): URI!
  login: String!
  resourcePath: URI!
  url: URI!
}

type User implements Actor {
  avatarUrl(size: Int): URI!
  login: String!
  resourcePath: URI!
  url: URI!
}

type RateLimit {
  cost: Int!
  limit: Int!
  nodeCount: Int!
  remaining: Int!
  resetAt: DateTime!
  used: Int!
}

type AutoMergeRequest {
  authorEmail: String
  commitBody: String
  commitHeadline: String
  enabledAt: DateTime
  enabledBy: Actor
  mergeMethod: PullRequestMergeMethod!
  pullRequest: PullRequest!
}

type StatusCheckRollup {
  state: StatusState!
}

type Commit {
  oid: GitObjectID!
  statusCheckRollup: StatusCheckRollup
}

type PullRequestCommit {
  commit: Commit!
}

type PullRequestCommitConnection {
  nodes: [PullRequestCommit]
  totalCount: Int!
}

type MergeQueueEntry {
  id: ID!
  position: Int!
  state: MergeQueueEntryState!
  enqueuedAt: DateTime!
  pullRequest: PullRequest
}

type MergeQueue {
  id: ID!
}

type PageInfo {
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
}

type PullRequest {
  autoMergeRequest: AutoMergeRequest
  baseRefName: String!
  commits(first: Int, last: Int): PullRequestCommitConnection!
  headRefName: String!
  headRefOid: GitObjectID!
  id: ID!
  isInMergeQueue: Boolean!
  mergeQueueEntry: MergeQueueEntry
  mergeable: MergeableState!
  merged: Boolean!
  number: Int!
  state: PullRequestState!
  title: String!
  viewerCanDisableAutoMerge: Boolean!
  viewerCanEnableAutoMerge: Boolean!
}

type PullRequestConnection {
  nodes: [PullRequest]
  pageInfo: PageInfo!
  totalCount: Int!
}

type Repository {
  autoMergeAllowed: Boolean!
  mergeQueue(branch: String): MergeQueue
  nameWithOwner: String!
  pullRequest(number: Int!): PullRequest
  pullRequests(states: [PullRequestState!], labels: [String!], baseRefName: String,
               headRefName: String, first: Int, last: Int, after: String,
               before: String): PullRequestConnection!
}

type Query {
  rateLimit(dryRun: Boolean = false): RateLimit
  repository(owner: String!, name: String!, followRenames: Boolean = true): Repository
  viewer: User!
}

input EnablePullRequestAutoMergeInput {
  authorEmail: String
  clientMutationId: String
  commitBody: String
  commitHeadline: String
  expectedHeadOid: GitObjectID
  mergeMethod: PullRequestMergeMethod = MERGE
  pullRequestId: ID!
}

type EnablePullRequestAutoMergePayload {
  actor: Actor
  clientMutationId: String
  pullRequest: PullRequest
}

input DisablePullRequestAutoMergeInput {
  clientMutationId: String
  pullRequestId: ID!
}

type DisablePullRequestAutoMergePayload {
  actor: Actor
  clientMutationId: String
  pullRequest: PullRequest
}

input EnqueuePullRequestInput {
  clientMutationId: String
  expectedHeadOid: GitObjectID
  jump: Boolean
  pullRequestId: ID!
}

type EnqueuePullRequestPayload {
  clientMutationId: String
  mergeQueueEntry: MergeQueueEntry
}

type Mutation {
  disablePullRequestAutoMerge(input: DisablePullRequestAutoMergeInput!):
    DisablePullRequestAutoMergePayload
  enablePullRequestAutoMerge(input: EnablePullRequestAutoMergeInput!):
    EnablePullRequestAutoMergePayload
  enqueuePullRequest(input: EnqueuePullRequestInput!): EnqueuePullRequestPayload
}
'''


class GitHubGraphQLError(Exception):
    """A refusal as GitHub words it; `kind` becomes the error's `type`."""

    def __init__(self, message: str, kind: str = "UNPROCESSABLE") -> None:
        super().__init__(message)
        self.kind = kind


def build_schema() -> GraphQLSchema:
    try:
        from graphql import build_schema as parse_sdl
    except ImportError as error:  # pragma: no cover - the message is the point
        raise ImportError("the loopback GitHub needs graphql-core: "
                          "pip install 'oxi-github[testing]'") from error
    schema = parse_sdl(SCHEMA_SDL)
    actor = schema.get_type("Actor")
    # Every Actor here is a User.
    actor.resolve_type = lambda _value, _info, _type: "User"  # type: ignore[union-attr]
    return schema


class GraphQLApi:
    def __init__(self, state: RepositoryState, web_url: str) -> None:
        self.state = state
        self.web_url = web_url.rstrip("/")
        self.schema = build_schema()

    def execute(self, query: str, variables: dict[str, Any] | None,
                operation: str | None) -> dict[str, Any]:
        from graphql import graphql_sync

        with self.state.lock:
            result = graphql_sync(self.schema, query, root_value=self._root(),
                                  variable_values=variables, operation_name=operation)
            self.state.settle()
        answer: dict[str, Any] = {}
        if result.data is not None or not result.errors:
            answer["data"] = result.data
        if result.errors:
            answer["errors"] = [self._error(e) for e in result.errors]
        return answer

    @staticmethod
    def _error(error: Any) -> dict[str, Any]:
        original = error.original_error
        kind = original.kind if isinstance(original, GitHubGraphQLError) else None
        shaped: dict[str, Any] = {}
        if kind is not None:
            shaped["type"] = kind
        if error.path:
            shaped["path"] = list(error.path)
        if error.locations:
            shaped["locations"] = [{"line": loc.line, "column": loc.column}
                                   for loc in error.locations]
        shaped["message"] = error.message
        return shaped

    # -- resolvers (graphql-core calls a callable value with (info, **arguments)) -------

    def _root(self) -> dict[str, Any]:
        return {
            "repository": self._repository,
            "viewer": lambda _info: self._actor(self.state.viewer),
            "rateLimit": lambda _info, dryRun=False: {
                "cost": 1, "limit": 5000, "nodeCount": 1, "remaining": 4999,
                "resetAt": now_iso(), "used": 1},
            "enablePullRequestAutoMerge": self._enable,
            "disablePullRequestAutoMerge": self._disable,
            "enqueuePullRequest": self._enqueue,
        }

    def _actor(self, login: str) -> dict[str, Any]:
        return {"login": login, "avatarUrl": lambda _info, size=None: f"{self.web_url}/a/{login}",
                "resourcePath": f"/{login}", "url": f"{self.web_url}/{login}"}

    def _repository(self, _info: Any, owner: str, name: str,
                    followRenames: bool = True) -> dict[str, Any] | None:
        state = self.state
        if (owner, name) != (state.owner, state.name):
            raise GitHubGraphQLError(
                f"Could not resolve to a Repository with the name '{owner}/{name}'.",
                "NOT_FOUND")
        return {
            "autoMergeAllowed": state.settings.allow_auto_merge,
            "nameWithOwner": f"{state.owner}/{state.name}",
            "mergeQueue": lambda _info, branch=None: (
                {"id": "MQ_" + (branch or state.base_branch)}
                if state.settings.merge_queue and (branch or state.base_branch) ==
                state.base_branch else None),
            "pullRequest": self._pull_request_by_number,
            "pullRequests": self._pull_requests,
        }

    def _pull_request_by_number(self, _info: Any, number: int) -> dict[str, Any]:
        pull = self.state.pulls.get(number)
        if pull is None:
            raise GitHubGraphQLError(
                f"Could not resolve to a PullRequest with the number of {number}.", "NOT_FOUND")
        return self._pull(pull)

    def _pull_requests(self, _info: Any, states: list[str] | None = None,
                       labels: list[str] | None = None, baseRefName: str | None = None,
                       headRefName: str | None = None, first: int | None = None,
                       last: int | None = None, after: str | None = None,
                       before: str | None = None) -> dict[str, Any]:
        chosen = [p for p in sorted(self.state.pulls.values(), key=lambda p: p.number)
                  if (not states or self._state_name(p) in states)
                  and (not labels or set(labels) & set(p.labels))
                  and (baseRefName is None or p.base == baseRefName)
                  and (headRefName is None or p.head == headRefName)]
        start = int(after) if after else 0
        size = min(first or 100, 100)
        page = chosen[start:start + size]
        more = start + size < len(chosen)
        return {"nodes": [self._pull(p) for p in page], "totalCount": len(chosen),
                "pageInfo": {"hasNextPage": more, "hasPreviousPage": start > 0,
                             "startCursor": str(start) if page else None,
                             "endCursor": str(start + len(page)) if page else None}}

    @staticmethod
    def _state_name(pull: PullRecord) -> str:
        return "MERGED" if pull.merged else pull.state.upper()

    def _pull(self, pull: PullRecord) -> dict[str, Any]:
        state = self.state

        def mergeable(_info: Any) -> str:
            if pull.state != "open":
                return "UNKNOWN"
            return "MERGEABLE" if state.mergeability(pull).mergeable else "CONFLICTING"

        def commits(_info: Any, first: int | None = None,
                    last: int | None = None) -> dict[str, Any]:
            rollup = state.rollup_state(pull.head_sha)
            return {"totalCount": 1, "nodes": [{"commit": {
                "oid": pull.head_sha,
                "statusCheckRollup": None if rollup is None else {"state": rollup}}}]}

        return {
            "id": pull.node_id, "number": pull.number, "title": pull.title,
            "state": self._state_name(pull), "merged": pull.merged,
            "mergeable": mergeable, "headRefName": pull.head, "headRefOid": pull.head_sha,
            "baseRefName": pull.base,
            "viewerCanEnableAutoMerge": pull.state == "open" and pull.auto_merge is None
            and state.settings.allow_auto_merge,
            "viewerCanDisableAutoMerge": pull.auto_merge is not None,
            "autoMergeRequest": self._auto_merge_request(pull),
            "isInMergeQueue": pull.queue_entry is not None,
            "mergeQueueEntry": self._queue_entry(pull),
            "commits": commits,
        }

    def _auto_merge_request(self, pull: PullRecord) -> dict[str, Any] | None:
        armed = pull.auto_merge
        if armed is None:
            return None
        return {"authorEmail": armed.get("author_email"),
                "commitBody": armed["commit_message"], "commitHeadline": armed["commit_title"],
                "enabledAt": armed["enabled_at"], "enabledBy": self._actor(armed["enabled_by"]),
                "mergeMethod": armed["merge_method"], "pullRequest": lambda _info: self._pull(
                    pull)}

    def _queue_entry(self, pull: PullRecord) -> dict[str, Any] | None:
        entry = pull.queue_entry
        if entry is None:
            return None
        return {"id": entry["id"], "position": entry["position"], "state": entry["state"],
                "enqueuedAt": now_iso(), "pullRequest": lambda _info: self._pull(pull)}

    def _by_node_id(self, node: str) -> PullRecord:
        for pull in self.state.pulls.values():
            if pull.node_id == node:
                return pull
        raise GitHubGraphQLError(f"Could not resolve to a node with the global id of '{node}'",
                                 "NOT_FOUND")

    def _enable(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        pull = self._by_node_id(input["pullRequestId"])
        # The order GitHub checks in, as recorded: "not allowed" comes first.
        if not state.settings.allow_auto_merge:
            raise GitHubGraphQLError("Auto merge is not allowed for this repository")
        if pull.state != "open":
            raise GitHubGraphQLError("Can't enable auto-merge for this pull request.")
        if not state.settings.branch_protection:
            raise GitHubGraphQLError(
                "Pull request Protected branch rules not configured for this branch")
        expected = input.get("expectedHeadOid")
        if expected and expected != pull.head_sha:
            raise GitHubGraphQLError(
                "Pull request Head branch was modified. Review and try the merge again.")
        if pull.auto_merge is None:
            if state.ready_to_merge(pull) and not state.settings.merge_queue:
                raise GitHubGraphQLError("Pull request Pull request is in clean status")
            method = input.get("mergeMethod") or "MERGE"
            pull.auto_merge = {
                "enabled_by": state.viewer, "merge_method": method,
                "commit_title": input.get("commitHeadline") or f"{pull.title} (#{pull.number})",
                "commit_message": input.get("commitBody") or pull.body,
                "author_email": input.get("authorEmail"), "enabled_at": now_iso(),
            }
            state.touch(pull)
        return {"clientMutationId": input.get("clientMutationId"),
                "actor": self._actor(state.viewer), "pullRequest": self._pull(pull)}

    def _disable(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pull = self._by_node_id(input["pullRequestId"])
        if pull.auto_merge is not None:
            pull.auto_merge = None
            self.state.touch(pull)
        return {"clientMutationId": input.get("clientMutationId"),
                "actor": self._actor(self.state.viewer), "pullRequest": self._pull(pull)}

    def _enqueue(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        pull = self._by_node_id(input["pullRequestId"])
        if not state.settings.merge_queue:
            raise GitHubGraphQLError("Pull request is not in a merge queue enabled branch")
        if pull.state != "open":
            raise GitHubGraphQLError("Pull request is closed")
        expected = input.get("expectedHeadOid")
        if expected and expected != pull.head_sha:
            raise GitHubGraphQLError("Pull request Head sha didn't match expected head sha")
        state.enqueue(pull)
        return {"clientMutationId": input.get("clientMutationId"),
                "mergeQueueEntry": self._queue_entry(pull)}
