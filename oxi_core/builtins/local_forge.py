"""The ``local`` forge: pull requests as ledger rows over the branches of a bare ``origin``.

Merging squashes the branch into origin's base branch in the bare repository itself, as a
forge's squash-merge would; a conflict marks the pull request conflicted (the engine then
re-plans its task).
Merges are serialised with a file lock, so several engines on one repository cannot race.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core import git
from oxi_core.errors import AutoMergeUnavailable, GitError, OxiError
from oxi_core.event import isoformat, parse_ts
from oxi_core.ledger import Verbatim, stored_json
from oxi_core.protocols import PluginContext
from oxi_core.repolock import forge_lock

if TYPE_CHECKING:
    # Imported when a pull request is read: loading oxi.toml builds this forge (every command),
    # and an idle tick's list of open pull requests is empty.
    from oxi_core.models import MergeAttempt, PullRequest

_COLUMNS = ("number", "task_id", "branch", "base", "title", "state", "head_sha", "files",
            "auto_merge_armed", "merged_sha", "closed_reason", "body", "updated_at")
MERGE_ATTEMPTS = 5
# PullRequestState.OPEN's value: every tick lists the open pull requests, which must not cost
# importing oxi_core.models when there are none.
OPEN_STATE = "open"


def _pr_from_row(row: tuple[Any, ...]) -> PullRequest:
    from oxi_core.models import PullRequest, PullRequestState

    values = dict(zip(_COLUMNS, row, strict=True))
    return PullRequest(
        number=values["number"],
        branch=values["branch"],
        base=values["base"],
        title=values["title"],
        state=PullRequestState(values["state"]),
        task_id=values["task_id"],
        files=tuple(json.loads(values["files"])),
        auto_merge_armed=bool(values["auto_merge_armed"]),
        head_sha=values["head_sha"],
        merged_sha=values["merged_sha"],
        url=f"local:#{values['number']}",
        closed_reason=values["closed_reason"],
        body=values["body"],
        # A merged row is not written again: its last update is the merge.
        merged_at=(parse_ts(values["updated_at"]) if values["state"] == PullRequestState.MERGED
                   else None),
    )


@attrs.define
class LocalForge:
    # The remote that is a bare repository on this machine.
    remote: str = "origin"
    # The branch pull requests merge into.
    base: str = "main"
    # Like a hosted repository whose auto-merge setting is off: arming is refused, and the
    # engine waits or merges directly ([engine] auto_merge_fallback).
    allow_auto_merge: bool = True
    _context: PluginContext | None = attrs.field(default=None, init=False, repr=False)
    _origin: Path | None = attrs.field(default=None, init=False, repr=False)

    def bind(self, context: PluginContext) -> None:
        self._context = context

    @property
    def context(self) -> PluginContext:
        if self._context is None:
            raise OxiError("the local forge is not bound to a repository",
                           hint="build it through oxi.toml (load_config), which binds it")
        return self._context

    @property
    def repo(self) -> Path:
        return self.context.paths.repo_root

    # -- reading ------------------------------------------------------------------------

    def _select(self, where: str, params: tuple[Any, ...]) -> list[PullRequest]:
        rows = self.context.ledger.query(
            f"SELECT {', '.join(_COLUMNS)} FROM pull_requests WHERE {where} "  # noqa: S608
            "ORDER BY number",
            params,
        )
        return [_pr_from_row(row) for row in rows]

    def get_pr(self, number: int) -> PullRequest:
        found = self._select("number = ?", (number,))
        if not found:
            raise OxiError(f"no pull request #{number} in the local forge")
        return found[0]

    def list_open_prs(self) -> list[PullRequest]:
        found = self._select("state = ?", (OPEN_STATE,))
        if not found:
            return found
        # Each branch's commit as the origin has it now (one git call): a push by someone
        # else shows as a moved head, as on a hosted forge.
        heads = self._heads()
        return [attrs.evolve(pr, head_sha=heads.get(pr.branch, pr.head_sha)) for pr in found]

    def _heads(self, *branches: str) -> dict[str, str]:
        """The origin's branches (those named, or all) and their commits: read from its files,
        else one git call."""
        stored = git.read_refs(self.origin, "refs/heads/")
        if stored is not None:
            heads = {name.removeprefix("refs/heads/"): sha for name, sha in stored.items()}
            return {name: sha for name, sha in heads.items() if not branches or name in branches}
        listing = git.out(["for-each-ref", "--format=%(refname:lstrip=2)%00%(objectname)",
                           *([f"refs/heads/{b}" for b in branches] or ["refs/heads/"])],
                          self.origin)
        heads = dict(line.split("\0", 1) for line in listing.splitlines() if line)
        return {name: sha for name, sha in heads.items() if not branches or name in branches}

    def merged_prs(self, since: datetime) -> list[PullRequest]:
        """Pull requests merged at or after ``since``, oldest first, with their bodies."""
        from oxi_core.models import PullRequestState

        return self._select("state = ? AND updated_at >= ?",
                            (PullRequestState.MERGED.value, isoformat(since)))

    # -- writing ------------------------------------------------------------------------

    def open_pr(self, *, task_id: str, branch: str, title: str, body: str) -> PullRequest:
        with self._lock():
            return self._open_pr(task_id=task_id, branch=branch, title=title, body=body)

    @property
    def origin(self) -> Path:
        """The bare repository behind the remote: pull requests are read and merged there."""
        if self._origin is None:
            url = git.remote_url(self.remote, self.repo, self.context.paths.state_dir)
            path = Path(url.removeprefix("file://"))
            path = path if path.is_absolute() else (self.repo / path).resolve()
            if not (path / "HEAD").is_file() and not (path / ".git").exists():
                raise OxiError(f"the local forge needs {self.remote} to be a repository on this "
                               f"machine, not {url}",
                               hint="use the GitHub forge for a hosted remote")
            self._origin = path
        return self._origin

    def _open_pr(self, *, task_id: str, branch: str, title: str, body: str) -> PullRequest:
        # Read the branch from the origin itself: no fetch, and never a stale tracking ref
        # (from its files when they tell, else one rev-parse).
        found = [sha for ref in (f"refs/heads/{self.base}", f"refs/heads/{branch}")
                 if (sha := git.stored_ref(ref, self.origin)) is not None]
        if len(found) != 2:
            result = git.git(["rev-parse", f"refs/heads/{self.base}", f"refs/heads/{branch}"],
                             self.origin, check=False)
            found = result.stdout.split() if result.returncode == 0 else []
        if len(found) != 2:
            raise OxiError(f"branch {branch} is not on {self.remote}",
                           hint="push the branch before opening a pull request")
        head = found[1]
        files = self._pushed_files(task_id, head)
        if files is None:
            files = git.changed_files(found[0], head, self.origin)
        ledger = self.context.ledger
        # Names and times stay as they are; the title and body are redacted on the way in.
        now, branch_name = Verbatim(ledger.now_iso()), Verbatim(branch)
        with ledger.transaction() as conn:
            row = conn.execute(
                "SELECT number FROM pull_requests WHERE branch = ? AND state = 'open'",
                (branch_name,),
            ).fetchone()
            if row is not None:
                number = int(row[0])
                conn.execute(
                    "UPDATE pull_requests SET head_sha = ?, files = ?, title = ?, body = ?, "
                    "updated_at = ? WHERE number = ?",
                    (Verbatim(head), stored_json(files), title, body, now, number),
                )
            else:
                number = int(conn.execute(
                    "SELECT coalesce(max(number), 0) + 1 FROM pull_requests").fetchone()[0])
                conn.execute(
                    "INSERT INTO pull_requests (number, task_id, branch, base, title, body, "
                    "state, head_sha, files, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                    (number, Verbatim(task_id), branch_name, Verbatim(self.base), title, body,
                     Verbatim(head), stored_json(files), now, now),
                )
        return self.get_pr(number)

    def _pushed_files(self, task_id: str, head: str) -> list[str] | None:
        """The files the engine found changed when it pushed exactly ``head`` for this task
        (its branch_pushed event), so the pull request's files need no second diff; None when
        no such push is recorded (a branch pushed by someone else): diff then."""
        from oxi_core.ledger import events as ev

        pushed = self.context.ledger.events(types=[ev.BRANCH_PUSHED], task_id=task_id,
                                            newest_first=True, limit=1)
        if not pushed or pushed[0].payload.get("head") != head:
            return None
        files = pushed[0].payload.get("files")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            return None
        return sorted(files)

    def arm_auto_merge(self, number: int) -> bool:
        from oxi_core.models import PullRequestState

        pr = self.get_pr(number)
        if pr.auto_merge_armed or pr.state is not PullRequestState.OPEN:
            return False
        if not self.allow_auto_merge:
            raise AutoMergeUnavailable(
                "Auto merge is not allowed for this repository",
                hint="the local forge's allow_auto_merge is false")
        self._set(number, auto_merge_armed=1)
        # Like a forge whose required checks already passed: auto-merge merges at once.
        self.merge_if_ready(number)
        return True

    def merge_if_ready(self, number: int) -> PullRequest:
        from oxi_core.models import PullRequestState

        with self._lock():
            pr = self.get_pr(number)
            if pr.state is PullRequestState.OPEN and pr.auto_merge_armed:
                self._squash_merge(pr)
        return self.get_pr(number)

    def merge_now(self, number: int, *, head_sha: str) -> MergeAttempt:
        """A direct squash merge of exactly ``head_sha`` (the local forge has no checks)."""
        from oxi_core.models import MergeAttempt, PullRequestState

        with self._lock():
            pr = self.get_pr(number)
            if pr.state is PullRequestState.OPEN:
                current = self._heads(pr.branch).get(pr.branch)
                if head_sha and current != head_sha:
                    return MergeAttempt(False, pr, f"the head moved to {(current or '')[:12]}")
                self._squash_merge(pr)
        after = self.get_pr(number)
        merged = after.state is PullRequestState.MERGED
        return MergeAttempt(merged, after, "" if merged else after.closed_reason or "not open")

    def review(self, number: int, body: str) -> None:
        self.comment(number, body, kind="review")

    def close_pr(self, number: int, comment: str) -> None:
        from oxi_core.models import PullRequestState

        self.comment(number, comment)
        self._set(number, state=PullRequestState.CLOSED.value, closed_reason=comment)

    def comment(self, number: int, body: str, *, kind: str = "comment") -> None:
        ledger = self.context.ledger
        with ledger.transaction() as conn:
            row = conn.execute("SELECT comments FROM pull_requests WHERE number = ?",
                               (number,)).fetchone()
            if row is None:
                raise OxiError(f"no pull request #{number} in the local forge")
            comments = [*json.loads(row[0]), {"at": ledger.now_iso(), "body": body,
                                               "kind": kind}]
            conn.execute("UPDATE pull_requests SET comments = ? WHERE number = ?",
                         (stored_json(comments), number))

    def comments(self, number: int) -> list[str]:
        rows = self.context.ledger.query("SELECT comments FROM pull_requests WHERE number = ?",
                                         (number,))
        return [] if not rows else [c["body"] for c in json.loads(rows[0][0])]

    def _set(self, number: int, **fields: Any) -> None:
        ledger = self.context.ledger
        assignments = ", ".join(f"{name} = ?" for name in fields)
        # A state and a commit are names; a closing reason is text from outside (redacted).
        values = [Verbatim(value) if name in ("state", "merged_sha") else value
                  for name, value in fields.items()]
        with ledger.transaction() as conn:
            conn.execute(
                f"UPDATE pull_requests SET {assignments}, updated_at = ? "  # noqa: S608
                "WHERE number = ?",
                (*values, Verbatim(ledger.now_iso()), number),
            )

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # One pull request change at a time, across engines: a merge reads, merges and moves
        # the origin's refs. (Only the origin: the repository's own lock is not needed.)
        with forge_lock(self.context.paths.state_dir).hold():
            yield

    def _squash_merge(self, pr: PullRequest) -> None:
        """Squash the branch onto the base in the bare origin itself, as a hosted forge does:
        `merge-tree --write-tree` merges in the object store (not needed when the branch is
        one commit on the base's tip: its tree is the result), `commit-tree` makes the squash
        commit, and one `update-ref` transaction moves the base (only if it is still the commit
        merged onto) and deletes the branch. No worktree, no fetch, no push: two or three
        processes (the heads are read from the origin's files; a for-each-ref when they cannot
        tell).
        The engine fetches before it next needs the base. Only the head first read is merged:
        a branch pushed to meanwhile is left open (the engine sees its head moved)."""
        from oxi_core.models import PullRequestState

        first_head: str | None = None
        for _attempt in range(MERGE_ATTEMPTS):
            heads = self._heads(self.base, pr.branch)
            base, head = heads.get(self.base), heads.get(pr.branch)
            if base is None:
                raise OxiError(f"{self.remote} has no branch {self.base} to merge into",
                               hint="push the base branch to the remote")
            if head is None:
                self._set(pr.number, state=PullRequestState.CLOSED.value,
                          closed_reason=f"branch {pr.branch} was deleted from {self.remote}")
                return
            if first_head is not None and head != first_head:
                return
            first_head = head
            tree = self._fast_forward_tree(base, head)
            if tree is None:
                tree = self._merge_tree(pr, base, head)
                if tree is None:
                    return  # conflicted (recorded)
            commit = git.out(["commit-tree", tree, "-p", base, "-m",
                              f"{pr.title} (#{pr.number})"], self.origin,
                             env=git.identity_env(self.repo, explicit=True,
                                                 state_dir=self.context.paths.state_dir))
            moved = git.git(["update-ref", "--stdin"], self.origin, check=False, input_text=(
                f"start\nupdate refs/heads/{self.base} {commit} {base}\n"
                f"delete refs/heads/{pr.branch} {head}\ncommit\n"))
            if moved.returncode == 0:
                self._set(pr.number, state=PullRequestState.MERGED.value, merged_sha=commit)
                return
            # The base (or the branch) moved meanwhile: merge onto what is there now.
        raise OxiError(f"could not merge #{pr.number} into {self.remote}/{self.base}",
                       hint="another process keeps moving it; the next tick retries")

    def _fast_forward_tree(self, base: str, head: str) -> str | None:
        """The head's own tree when its only parent is the base's tip (the usual pull request:
        one commit on the base as it is now): merging it changes nothing else, so no
        merge-tree is needed. Read from the commit's object file; None when that cannot tell
        or the branch is anything else."""
        found = git.stored_commit(head, self.origin)
        return found.tree if found is not None and found.parents == (base,) else None

    def _merge_tree(self, pr: PullRequest, base: str, head: str) -> str | None:
        """The tree of merging ``head`` into ``base`` (`merge-tree --write-tree`), or None
        after marking the pull request conflicted."""
        from oxi_core.git_version import require_merge_tree
        from oxi_core.models import PullRequestState

        require_merge_tree(self.context.paths.state_dir)  # never half a merge on an old git
        merged = git.git(["merge-tree", "--write-tree", "--name-only", base, head],
                         self.origin, check=False)
        lines = merged.stdout.splitlines()
        if merged.returncode == 1:  # conflicts: the tree, then the conflicted paths
            conflicts = list(dict.fromkeys(line for line in lines[1:lines.index("")]
                                           if line)) if "" in lines else lines[1:]
            reason = ("merge conflict in " + ", ".join(conflicts) if conflicts
                      else merged.stdout.strip()[-300:])
            self._set(pr.number, state=PullRequestState.CONFLICTED.value,
                      closed_reason=reason)
            return None
        if merged.returncode != 0 or not lines:
            raise GitError(["git", "merge-tree"], merged.returncode,
                           merged.stderr or merged.stdout)
        return lines[0]
