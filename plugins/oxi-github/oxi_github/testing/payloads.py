"""REST response bodies as GitHub's OpenAPI description shapes them (schemas `pull-request`,
`pull-request-simple`, `diff-entry`, `check-run`, `combined-commit-status`, `commit`,
`repo-search-result-item`, `release`, `stargazer`, ...), filled from the loopback's state."""

from __future__ import annotations

from typing import Any

from oxi_github.testing.bare import Commit, DiffEntry
from oxi_github.testing.catalogue import CatalogueRepository, ReleaseRecord
from oxi_github.testing.state import (
    CheckRun,
    CommitStatus,
    PullRecord,
    RepositoryState,
    node_id,
    now_iso,
)


class Urls:
    """Where things live: the API root, the web root (git and html links)."""

    def __init__(self, api: str, web: str, owner: str, name: str) -> None:
        self.api = api.rstrip("/")
        self.web = web.rstrip("/")
        self.repo_api = f"{self.api}/repos/{owner}/{name}"
        self.repo_web = f"{self.web}/{owner}/{name}"


def user(login: str, urls: Urls) -> dict[str, Any]:
    number = sum(map(ord, login))
    return {
        "login": login, "id": number, "node_id": node_id("User", number),
        "avatar_url": f"{urls.web}/avatars/{login}", "gravatar_id": "",
        "url": f"{urls.api}/users/{login}", "html_url": f"{urls.web}/{login}",
        "followers_url": f"{urls.api}/users/{login}/followers",
        "following_url": f"{urls.api}/users/{login}/following{{/other_user}}",
        "gists_url": f"{urls.api}/users/{login}/gists{{/gist_id}}",
        "starred_url": f"{urls.api}/users/{login}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{urls.api}/users/{login}/subscriptions",
        "organizations_url": f"{urls.api}/users/{login}/orgs",
        "repos_url": f"{urls.api}/users/{login}/repos",
        "events_url": f"{urls.api}/users/{login}/events{{/privacy}}",
        "received_events_url": f"{urls.api}/users/{login}/received_events",
        "type": "User", "site_admin": False,
    }


def repository(state: RepositoryState, urls: Urls) -> dict[str, Any]:
    settings = state.settings
    return {
        "id": 1296269, "node_id": node_id("Repository", 1296269), "name": state.name,
        "full_name": f"{state.owner}/{state.name}", "owner": user(state.owner, urls),
        "private": settings.private, "html_url": urls.repo_web, "description": None,
        "fork": False, "url": urls.repo_api,
        "pulls_url": f"{urls.repo_api}/pulls{{/number}}",
        "git_url": f"{urls.repo_web}.git", "clone_url": f"{urls.repo_web}.git",
        "default_branch": state.base_branch, "visibility":
            "private" if settings.private else "public",
        "allow_auto_merge": settings.allow_auto_merge, "allow_squash_merge": True,
        "allow_merge_commit": True, "allow_rebase_merge": True,
        "delete_branch_on_merge": settings.delete_branch_on_merge,
        "permissions": {"admin": False, "maintain": False, "push": True, "triage": True,
                        "pull": True},
        "created_at": "2011-01-26T19:01:12Z", "updated_at": "2011-01-26T19:14:43Z",
        "pushed_at": "2011-01-26T19:06:43Z",
    }


def _label(name: str, urls: Urls) -> dict[str, Any]:
    number = sum(map(ord, name))
    return {"id": number, "node_id": node_id("Label", number),
            "url": f"{urls.repo_api}/labels/{name}", "name": name, "description": None,
            "color": "ededed", "default": False}


def _branch(state: RepositoryState, urls: Urls, ref: str, sha: str) -> dict[str, Any]:
    return {"label": f"{state.owner}:{ref}", "ref": ref, "sha": sha,
            "user": user(state.owner, urls), "repo": repository(state, urls)}


def auto_merge(pull: PullRecord, urls: Urls) -> dict[str, Any] | None:
    if pull.auto_merge is None:
        return None
    armed = pull.auto_merge
    return {"enabled_by": user(armed["enabled_by"], urls),
            "merge_method": armed["merge_method"].lower(),
            "commit_title": armed["commit_title"], "commit_message": armed["commit_message"]}


def pull_simple(state: RepositoryState, pull: PullRecord, urls: Urls) -> dict[str, Any]:
    """Schema `pull-request-simple`: an item of GET /repos/{owner}/{repo}/pulls."""
    base_sha = state.repo.branch_sha(pull.base) or ""
    api = f"{urls.repo_api}/pulls/{pull.number}"
    issue = f"{urls.repo_api}/issues/{pull.number}"
    return {
        "url": api, "id": 100000 + pull.number, "node_id": pull.node_id,
        "html_url": f"{urls.repo_web}/pull/{pull.number}",
        "diff_url": f"{urls.repo_web}/pull/{pull.number}.diff",
        "patch_url": f"{urls.repo_web}/pull/{pull.number}.patch",
        "issue_url": issue, "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{urls.repo_api}/pulls/comments{{/number}}",
        "comments_url": f"{issue}/comments",
        "statuses_url": f"{urls.repo_api}/statuses/{pull.head_sha}",
        "number": pull.number, "state": pull.state, "locked": False, "title": pull.title,
        "user": user(pull.user, urls), "body": pull.body,
        "labels": [_label(name, urls) for name in pull.labels], "milestone": None,
        "active_lock_reason": None, "created_at": pull.created_at,
        "updated_at": pull.updated_at, "closed_at": pull.closed_at,
        "merged_at": pull.merged_at, "merge_commit_sha": pull.merge_commit_sha,
        "assignee": None, "assignees": [], "requested_reviewers": [], "requested_teams": [],
        "head": _branch(state, urls, pull.head, pull.head_sha),
        "base": _branch(state, urls, pull.base, base_sha),
        "_links": {
            "self": {"href": api}, "html": {"href": f"{urls.repo_web}/pull/{pull.number}"},
            "issue": {"href": issue}, "comments": {"href": f"{issue}/comments"},
            "review_comments": {"href": f"{api}/comments"},
            "review_comment": {"href": f"{urls.repo_api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/commits"},
            "statuses": {"href": f"{urls.repo_api}/statuses/{pull.head_sha}"},
        },
        "author_association": "OWNER", "auto_merge": auto_merge(pull, urls), "draft": False,
    }


def pull_full(state: RepositoryState, pull: PullRecord, urls: Urls) -> dict[str, Any]:
    """Schema `pull-request`: GET/POST/PATCH of one pull request."""
    body = pull_simple(state, pull, urls)
    files = state.files(pull)
    if pull.state == "open":
        merge = state.mergeability(pull)
        mergeable: bool | None = merge.mergeable
        mergeable_state = merge.state
    else:
        mergeable, mergeable_state = None, "unknown"
    body.update({
        "merged": pull.merged, "mergeable": mergeable, "rebaseable": mergeable,
        "mergeable_state": mergeable_state,
        "merged_by": user(pull.merged_by, urls) if pull.merged_by else None,
        "comments": len(pull.comments), "review_comments": 0, "maintainer_can_modify": False,
        "commits": len(state.repo.out("rev-list", pull.head_sha,
                                      f"^{body['base']['sha']}").split())
        if body["base"]["sha"] else 1,
        "additions": sum(f.additions for f in files),
        "deletions": sum(f.deletions for f in files), "changed_files": len(files),
    })
    return body


def diff_entry(entry: DiffEntry, head_sha: str, urls: Urls) -> dict[str, Any]:
    return {
        "sha": entry.sha, "filename": entry.filename, "status": entry.status,
        "additions": entry.additions, "deletions": entry.deletions,
        "changes": entry.additions + entry.deletions,
        "blob_url": f"{urls.repo_web}/blob/{head_sha}/{entry.filename}",
        "raw_url": f"{urls.repo_web}/raw/{head_sha}/{entry.filename}",
        "contents_url": f"{urls.repo_api}/contents/{entry.filename}?ref={head_sha}",
    }


def check_run(run: CheckRun, urls: Urls) -> dict[str, Any]:
    return {
        "id": run.id, "head_sha": run.head_sha, "node_id": node_id("CheckRun", run.id),
        "external_id": "", "url": f"{urls.repo_api}/check-runs/{run.id}",
        "html_url": f"{urls.repo_web}/runs/{run.id}", "details_url": None,
        "status": run.status, "conclusion": run.conclusion, "started_at": run.started_at,
        "completed_at": run.completed_at,
        "output": {"title": None, "summary": None, "text": None, "annotations_count": 0,
                   "annotations_url": f"{urls.repo_api}/check-runs/{run.id}/annotations"},
        "name": run.name, "check_suite": {"id": run.id}, "app": None, "pull_requests": [],
    }


def commit_status(status: CommitStatus, sha: str, urls: Urls) -> dict[str, Any]:
    return {
        "url": f"{urls.repo_api}/statuses/{sha}", "avatar_url": None, "id": status.id,
        "node_id": node_id("StatusContext", status.id), "state": status.state,
        "description": status.description, "target_url": None, "context": status.context,
        "created_at": status.created_at, "updated_at": status.created_at,
    }


def combined_status(state: RepositoryState, sha: str, urls: Urls) -> dict[str, Any]:
    statuses = state.latest_statuses(sha)
    return {
        "state": state.combined_state(sha),
        "statuses": [commit_status(s, sha, urls) for s in statuses], "sha": sha,
        "total_count": len(statuses), "repository": repository(state, urls),
        "commit_url": f"{urls.repo_api}/commits/{sha}",
        "url": f"{urls.repo_api}/commits/{sha}/status",
    }


def commit(item: Commit, urls: Urls) -> dict[str, Any]:
    person = {"name": item.author_name, "email": item.author_email, "date": item.date}
    return {
        "url": f"{urls.repo_api}/commits/{item.sha}", "sha": item.sha,
        "node_id": node_id("Commit", int(item.sha[:8], 16)),
        "html_url": f"{urls.repo_web}/commit/{item.sha}",
        "comments_url": f"{urls.repo_api}/commits/{item.sha}/comments",
        "commit": {
            "url": f"{urls.repo_api}/git/commits/{item.sha}", "author": person,
            "committer": person, "message": item.message,
            "tree": {"url": f"{urls.repo_api}/git/trees/{item.tree}", "sha": item.tree},
            "comment_count": 0,
            "verification": {"verified": False, "reason": "unsigned", "signature": None,
                             "payload": None, "verified_at": None},
        },
        "author": None, "committer": None,
        "parents": [{"sha": p, "url": f"{urls.repo_api}/commits/{p}",
                     "html_url": f"{urls.repo_web}/commit/{p}"} for p in item.parents],
    }


def issue_comment(comment_id: int, body: str, login: str, number: int,
                  urls: Urls) -> dict[str, Any]:
    return {
        "id": comment_id, "node_id": node_id("IssueComment", comment_id),
        "url": f"{urls.repo_api}/issues/comments/{comment_id}",
        "html_url": f"{urls.repo_web}/pull/{number}#issuecomment-{comment_id}",
        "body": body, "user": user(login, urls), "created_at": now_iso(), "updated_at": now_iso(),
        "issue_url": f"{urls.repo_api}/issues/{number}", "author_association": "OWNER",
    }


def review(review_id: int, body: str, event: str, login: str, number: int, commit_id: str,
           urls: Urls) -> dict[str, Any]:
    state = {"COMMENT": "COMMENTED", "APPROVE": "APPROVED",
             "REQUEST_CHANGES": "CHANGES_REQUESTED"}.get(event, "PENDING")
    return {
        "id": review_id, "node_id": node_id("PullRequestReview", review_id),
        "user": user(login, urls), "body": body, "state": state,
        "html_url": f"{urls.repo_web}/pull/{number}#pullrequestreview-{review_id}",
        "pull_request_url": f"{urls.repo_api}/pulls/{number}",
        "_links": {"html": {"href": f"{urls.repo_web}/pull/{number}#pullrequestreview-"
                                    f"{review_id}"},
                   "pull_request": {"href": f"{urls.repo_api}/pulls/{number}"}},
        "submitted_at": now_iso(), "commit_id": commit_id, "author_association": "OWNER",
    }


def labels(names: list[str], urls: Urls) -> list[dict[str, Any]]:
    return [_label(name, urls) for name in names]


# -- other people's repositories (oxi_github.testing.catalogue) ------------------------------


def catalogue_repository(record: CatalogueRepository, urls: Urls) -> dict[str, Any]:
    """Schema `repo-search-result-item` (less `score`), which `minimal-repository` (an item of
    GET /orgs/{org}/repos) shares every field oxi reads with."""
    api = f"{urls.api}/repos/{record.full_name}"
    web = f"{urls.web}/{record.full_name}"
    stars = record.stargazers_count
    return {
        "id": record.id, "node_id": node_id("Repository", record.id), "name": record.name,
        "full_name": record.full_name, "owner": user(record.owner, urls), "private": False,
        "html_url": web, "description": record.description, "fork": record.fork, "url": api,
        "created_at": record.created_at, "updated_at": record.pushed_at,
        "pushed_at": record.pushed_at, "homepage": None, "size": 524,
        "stargazers_count": stars, "watchers_count": stars, "language": record.language,
        "forks_count": record.forks_count, "open_issues_count": 0,
        "default_branch": "main", "topics": list(record.topics),
        "forks_url": f"{api}/forks", "keys_url": f"{api}/keys{{/key_id}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "teams_url": f"{api}/teams", "hooks_url": f"{api}/hooks",
        "issue_events_url": f"{api}/issues/events{{/number}}", "events_url": f"{api}/events",
        "assignees_url": f"{api}/assignees{{/user}}", "branches_url": f"{api}/branches{{/branch}}",
        "tags_url": f"{api}/tags", "blobs_url": f"{api}/git/blobs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}", "git_refs_url": f"{api}/git/refs{{/sha}}",
        "trees_url": f"{api}/git/trees{{/sha}}", "statuses_url": f"{api}/statuses/{{sha}}",
        "languages_url": f"{api}/languages", "stargazers_url": f"{api}/stargazers",
        "contributors_url": f"{api}/contributors", "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription", "commits_url": f"{api}/commits{{/sha}}",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "comments_url": f"{api}/comments{{/number}}",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}", "merges_url": f"{api}/merges",
        "archive_url": f"{api}/{{archive_format}}{{/ref}}", "downloads_url": f"{api}/downloads",
        "issues_url": f"{api}/issues{{/number}}", "pulls_url": f"{api}/pulls{{/number}}",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "labels_url": f"{api}/labels{{/name}}", "releases_url": f"{api}/releases{{/id}}",
        "deployments_url": f"{api}/deployments", "git_url": f"{web}.git",
        "ssh_url": f"git@{urls.web.split('://', 1)[-1]}:{record.full_name}.git",
        "clone_url": f"{web}.git", "svn_url": web, "mirror_url": None, "forks": record.forks_count,
        "open_issues": 0, "watchers": stars, "has_issues": True, "has_projects": True,
        "has_pages": False, "has_wiki": True, "has_downloads": True, "has_discussions": False,
        "archived": record.archived, "disabled": False, "visibility": "public",
        "license": {"key": "mit", "name": "MIT License", "url": f"{urls.api}/licenses/mit",
                    "spdx_id": "MIT", "node_id": node_id("License", 13),
                    "html_url": f"{urls.api}/licenses/mit"},
    }


def release(record: ReleaseRecord, repository: CatalogueRepository,
            urls: Urls) -> dict[str, Any]:
    """Schema `release`: an item of GET /repos/{owner}/{repo}/releases."""
    api = f"{urls.api}/repos/{repository.full_name}"
    web = f"{urls.web}/{repository.full_name}"
    return {
        "url": f"{api}/releases/{record.id}",
        "html_url": f"{web}/releases/tag/{record.tag_name}",
        "assets_url": f"{api}/releases/{record.id}/assets",
        "upload_url": f"{urls.web}/uploads/repos/{repository.full_name}/releases/{record.id}"
                      "/assets{?name,label}",
        "tarball_url": f"{api}/tarball/{record.tag_name}",
        "zipball_url": f"{api}/zipball/{record.tag_name}",
        "id": record.id, "node_id": node_id("Release", record.id), "tag_name": record.tag_name,
        "target_commitish": record.target_commitish, "name": record.name,
        "body": record.body, "draft": record.draft, "prerelease": record.prerelease,
        "immutable": False, "created_at": record.published_at,
        "published_at": None if record.draft else record.published_at,
        "updated_at": record.published_at, "author": user(record.author, urls), "assets": [],
    }


def stargazer(starred_at: str, login: str, urls: Urls, *, with_time: bool) -> dict[str, Any]:
    """An item of GET .../stargazers: `simple-user`, or with the media type
    application/vnd.github.star+json, `stargazer` ({starred_at, user})."""
    who = user(login, urls)
    return {"starred_at": starred_at, "user": who} if with_time else who
