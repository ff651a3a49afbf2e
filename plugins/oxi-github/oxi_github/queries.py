"""The GraphQL operations the forge sends (valid against GitHub's public schema)."""

from __future__ import annotations

ENABLE_AUTO_MERGE = """
mutation EnableAutoMerge($pullRequestId: ID!, $mergeMethod: PullRequestMergeMethod, $expectedHeadOid: GitObjectID) {
  enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, mergeMethod: $mergeMethod, expectedHeadOid: $expectedHeadOid}) {
    clientMutationId
    actor {
      login
    }
    pullRequest {
      id
      number
      autoMergeRequest {
        enabledAt
        mergeMethod
        commitHeadline
        commitBody
        authorEmail
        enabledBy {
          login
        }
      }
    }
  }
}
"""  # noqa: E501 - GitHub's documented operation text, as it is

DISABLE_AUTO_MERGE = """
mutation DisableAutoMerge($pullRequestId: ID!) {
  disablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId}) {
    clientMutationId
    actor {
      login
    }
    pullRequest {
      id
      number
      autoMergeRequest {
        enabledAt
      }
    }
  }
}
"""

ENQUEUE = """
mutation EnqueuePullRequest($pullRequestId: ID!, $expectedHeadOid: GitObjectID) {
  enqueuePullRequest(input: {pullRequestId: $pullRequestId, expectedHeadOid: $expectedHeadOid}) {
    mergeQueueEntry {
      id
      position
      state
    }
  }
}
"""

MERGE_QUEUE = """
query MergeQueue($owner: String!, $name: String!, $branch: String!) {
  repository(owner: $owner, name: $name) {
    autoMergeAllowed
    mergeQueue(branch: $branch) {
      id
    }
  }
}
"""

# One request per tick for every open pull request's checks, mergeability and auto-merge.
OPEN_PULL_REQUESTS = """
query OpenPullRequests($owner: String!, $name: String!, $base: String!, $after: String) {
  repository(owner: $owner, name: $name) {
    pullRequests(states: [OPEN], baseRefName: $base, first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        number
        headRefOid
        mergeable
        autoMergeRequest {
          enabledAt
          mergeMethod
        }
        mergeQueueEntry {
          position
          state
        }
        commits(last: 1) {
          nodes {
            commit {
              oid
              statusCheckRollup {
                state
              }
            }
          }
        }
      }
    }
  }
}
"""
