"""The loopback GitHub's repository: a real bare git repository, read and written with git's
plumbing only (no worktree, no checkout): PR files from `git diff`, mergeability and squash
merges from `git merge-tree --write-tree` and `git commit-tree`, a person's push to a branch
through a throwaway index file."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

# GitHub signs the squash commits it makes as itself.
GITHUB_IDENTITY = {
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}
PERSON_IDENTITY = {
    "GIT_AUTHOR_NAME": "A Person",
    "GIT_AUTHOR_EMAIL": "person@example.com",
    "GIT_COMMITTER_NAME": "A Person",
    "GIT_COMMITTER_EMAIL": "person@example.com",
}
_STATUS = {"A": "added", "D": "removed", "M": "modified", "T": "changed", "R": "renamed",
           "C": "copied"}


class GitFailed(RuntimeError):
    pass


@attrs.frozen
class DiffEntry:
    filename: str
    status: str
    additions: int
    deletions: int
    sha: str | None


@attrs.frozen
class MergeResult:
    tree: str | None  # None: the merge conflicts
    conflicts: tuple[str, ...] = ()


@attrs.frozen
class Commit:
    sha: str
    parents: tuple[str, ...]
    message: str
    author_name: str
    author_email: str
    date: str
    tree: str


class BareRepository:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, path: Path, branch: str = "main") -> BareRepository:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", f"--initial-branch={branch}", str(path)],
                       check=True, capture_output=True)
        return cls(path)

    def git(self, *args: str, env: Mapping[str, str] | None = None, input_text: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
        result = subprocess.run(["git", *args], cwd=self.path, env=full_env, text=True,
                                capture_output=True, input=input_text, check=False)
        if check and result.returncode != 0:
            raise GitFailed(f"git {' '.join(args)}: {result.stderr.strip()}")
        return result

    def out(self, *args: str, **kwargs: object) -> str:
        return self.git(*args, **kwargs).stdout.strip()  # type: ignore[arg-type]

    # -- reading ------------------------------------------------------------------------

    def branch_sha(self, branch: str) -> str | None:
        found = self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}",
                         check=False)
        return found.stdout.strip() or None

    def heads(self) -> dict[str, str]:
        listing = self.out("for-each-ref", "--format=%(refname:lstrip=2)%00%(objectname)",
                           "refs/heads/")
        return dict(line.split("\0", 1) for line in listing.splitlines() if line)

    def merge_base(self, left: str, right: str) -> str | None:
        found = self.git("merge-base", left, right, check=False)
        return found.stdout.strip() or None

    def has_commits_between(self, base: str, head: str) -> bool:
        return bool(self.out("rev-list", "-n", "1", head, f"^{base}"))

    def diff_entries(self, base: str, head: str) -> list[DiffEntry]:
        """What GitHub lists as a pull request's files: head against the merge base."""
        since = self.merge_base(base, head) or base
        raw = self.out("diff", "--raw", "--no-abbrev", "--no-renames", "-z", since, head)
        numstat = self.out("diff", "--numstat", "--no-renames", "-z", since, head)
        counts: dict[str, tuple[int, int]] = {}
        for record in numstat.split("\0"):
            if record.count("\t") == 2:
                added, deleted, name = record.split("\t")  # "-" for a binary file
                counts[name] = (int(added) if added.isdigit() else 0,
                                int(deleted) if deleted.isdigit() else 0)
        entries = []
        fields = raw.split("\0")
        for meta, name in zip(fields[0::2], fields[1::2], strict=False):
            if not meta.startswith(":"):
                continue
            _old_mode, _new_mode, _old_sha, new_sha, status = meta[1:].split(" ")
            plus, minus = counts.get(name, (0, 0))
            entries.append(DiffEntry(name, _STATUS.get(status[:1], "modified"), plus, minus,
                                     None if status.startswith("D") else new_sha))
        return sorted(entries, key=lambda e: e.filename)

    def merge(self, base: str, head: str) -> MergeResult:
        """`git merge-tree --write-tree`: the merged tree, or the conflicting paths."""
        result = self.git("merge-tree", "--write-tree", "--name-only", "--no-messages", base,
                          head, check=False)
        lines = result.stdout.splitlines()
        if result.returncode == 0 and lines:
            return MergeResult(lines[0])
        if result.returncode == 1:
            return MergeResult(None, tuple(line for line in lines[1:] if line))
        if "unrelated histories" in result.stderr:
            return MergeResult(None, ())
        raise GitFailed(f"git merge-tree {base} {head}: {result.stderr.strip()}")

    def commit(self, sha: str) -> Commit:
        text = self.out("show", "-s", "--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%T%x00%B", sha)
        sha_, parents, name, email, date, tree, message = text.split("\0", 6)
        return Commit(sha_, tuple(parents.split()), message.strip(), name, email, date, tree)

    def log(self, ref: str, limit: int = 100, *, since: str | None = None,
            until: str | None = None) -> list[Commit]:
        """Newest first; ``since``/``until`` (ISO 8601) compare the committer date, as
        GitHub's commits list does."""
        window = [f"--since={since}"] * bool(since) + [f"--until={until}"] * bool(until)
        shas = self.out("rev-list", f"--max-count={limit}", *window, ref).split()
        return [self.commit(sha) for sha in shas]

    # -- writing ------------------------------------------------------------------------

    def commit_tree(self, tree: str, parent: str, message: str,
                    identity: Mapping[str, str] = GITHUB_IDENTITY) -> str:
        return self.out("commit-tree", tree, "-p", parent, "-F", "-", env=identity,
                        input_text=message)

    def update_branch(self, branch: str, new: str, old: str | None) -> bool:
        """Move ``branch`` to ``new`` only if it still is at ``old`` (compare and swap)."""
        args = ["update-ref", f"refs/heads/{branch}", new]
        if old is not None:
            args.append(old)
        return self.git(*args, check=False).returncode == 0

    def delete_branch(self, branch: str) -> bool:
        return self.git("update-ref", "-d", f"refs/heads/{branch}", check=False).returncode == 0

    def commit_files(self, branch: str, files: Mapping[str, str | None], message: str,
                     identity: Mapping[str, str] = PERSON_IDENTITY,
                     start: str | None = None) -> str:
        """A commit on ``branch`` that writes (or, for None, deletes) ``files``: what a person's
        push would bring. A new branch starts at ``start`` (a branch name). Built in a
        throwaway index, so no worktree is needed."""
        parent = self.branch_sha(branch)
        created_from = None if parent is not None or start is None else self.branch_sha(start)
        old = parent
        parent = parent or created_from
        with tempfile.TemporaryDirectory() as scratch:
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            if parent is not None:
                self.git("read-tree", parent, env=index)
            for name, text in files.items():
                if text is None:
                    self.git("update-index", "--force-remove", "--", name, env=index)
                    continue
                blob = self.out("hash-object", "-w", "--stdin", input_text=text)
                self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}",
                         env=index)
            tree = self.out("write-tree", env=index)
        parents = ["-p", parent] if parent is not None else []
        sha = self.out("commit-tree", tree, *parents, "-F", "-", env=identity,
                       input_text=message)
        if not self.update_branch(branch, sha, old):
            raise GitFailed(f"{branch} moved while a commit was being added to it")
        return sha
