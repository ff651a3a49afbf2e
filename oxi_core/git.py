"""Thin, typed wrappers over the git command line (argv lists only, never a shell)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from oxi_core.errors import GitError

if TYPE_CHECKING:
    import subprocess

# What oxi's own commits are signed with when the repository has no identity configured.
OXI_IDENTITY = {
    "GIT_AUTHOR_NAME": "oxi",
    "GIT_AUTHOR_EMAIL": "oxi@localhost",
    "GIT_COMMITTER_NAME": "oxi",
    "GIT_COMMITTER_EMAIL": "oxi@localhost",
}


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a password on a service host
    env.setdefault("LC_ALL", "C")
    env.update(extra or {})
    return env


def git(
    args: Sequence[str],
    cwd: Path,
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    import subprocess  # on first use: an idle tick reads refs from files and starts no git

    argv = ["git", *args]
    try:
        result = subprocess.run(
            # A file name git prints need not be UTF-8: its bytes are kept as surrogates (as
            # os.fsdecode keeps them), never an error.
            argv, cwd=cwd, env=_env(env), capture_output=True, text=True,
            errors="surrogateescape", timeout=timeout_s,
            input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        raise GitError(argv, -1, f"timed out after {timeout_s:.0f}s") from error
    if check and result.returncode != 0:
        raise GitError(argv, result.returncode, result.stderr or result.stdout)
    return result


def out(args: Sequence[str], cwd: Path, **kwargs: object) -> str:
    return git(args, cwd, **kwargs).stdout.strip()  # type: ignore[arg-type]



def rev_parse(ref: str, cwd: Path) -> str | None:
    result = git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd, check=False)
    return result.stdout.strip() or None



def remote_branch_sha(remote: str, branch: str, cwd: Path) -> str | None:
    return rev_parse(f"refs/remotes/{remote}/{branch}", cwd)


def remote_heads(remote: str, cwd: Path) -> dict[str, str]:
    """Every remote-tracking branch of ``remote`` and its commit (from the files, else one git
    call)."""
    prefix = f"refs/remotes/{remote}/"
    stored = read_refs(cwd, prefix)
    if stored is not None:  # read from the files: no git process
        return {name.removeprefix(prefix): sha for name, sha in stored.items()}
    listing = out(["for-each-ref", "--format=%(refname)%00%(objectname)", prefix], cwd)
    heads: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, sha = line.partition("\0")
        heads[name.removeprefix(prefix)] = sha
    return heads


_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


def _files_git_dir(repo: Path) -> Path | None:
    """The git directory of ``repo`` (a checkout's .git folder, or a bare repository itself)
    when its refs can be read from files; None for a linked worktree (a .git file) and a
    reftable store, and when the environment points git elsewhere (GIT_DIR, as in a hook):
    git is asked then."""
    if "GIT_DIR" in os.environ or "GIT_COMMON_DIR" in os.environ:
        return None
    dot_git = repo / ".git"
    if dot_git.exists() or dot_git.is_symlink():
        git_dir = dot_git if dot_git.is_dir() and not dot_git.is_symlink() else None
    else:
        git_dir = repo if (repo / "HEAD").is_file() else None
    if git_dir is None or (git_dir / "reftable").exists() \
            or not (git_dir / "refs" / "heads").is_dir():
        return None
    return git_dir


def read_refs(repo: Path, prefix: str) -> dict[str, str] | None:
    """Every ref under ``prefix`` (``refs/...``, ending in /) and its object, read from the
    repository's files the way git stores them (loose refs win over packed-refs; a symbolic
    ref takes its target's object, as for-each-ref shows it), without starting git. None
    whenever the files cannot settle it (see _files_git_dir; an unreadable or odd file, a
    symbolic ref pointing elsewhere): ask git then."""
    git_dir = _files_git_dir(repo)
    if git_dir is None or not prefix.startswith("refs/") or not prefix.endswith("/"):
        return None
    # Loose refs first, then packed-refs: `git pack-refs` (run by gc after a fetch) writes
    # packed-refs before it deletes the loose files, so a ref is never missed in between.
    loose: dict[str, str] = {}
    symbolic: dict[str, str] = {}
    folder = git_dir / prefix
    try:
        files = [path for path in folder.rglob("*") if path.is_file()] if folder.is_dir() else []
        for path in files:
            if path.name.endswith(".lock"):
                continue  # a ref being written: git ignores these names as refs too
            value = path.read_text(encoding="ascii").strip()
            name = path.relative_to(git_dir).as_posix()
            if _OBJECT_ID.fullmatch(value):
                loose[name] = value
            elif value.startswith("ref: "):
                symbolic[name] = value.removeprefix("ref: ")
            else:
                return None
    except (OSError, UnicodeDecodeError):  # a ref removed or rewritten as we read: ask git
        return None
    found: dict[str, str] = {}
    try:
        packed = (git_dir / "packed-refs").read_text(encoding="utf-8")
    except FileNotFoundError:
        packed = ""
    except (OSError, UnicodeDecodeError):
        return None
    for line in packed.splitlines():
        if line.startswith(("#", "^")):
            continue  # the header, and the commits annotated tags point to
        sha, _, name = line.partition(" ")
        if name.startswith(prefix):
            if not _OBJECT_ID.fullmatch(sha):
                return None
            found[name] = sha
    found.update(loose)
    for name, target in symbolic.items():
        if target not in found:
            return None
        found[name] = found[target]
    return found


def worktree_git_dir(worktree: Path) -> Path | None:
    """The folder holding ``worktree``'s own HEAD and index: a linked worktree's admin folder
    (which its .git file names), a main checkout's .git; None when that is not plain to see
    or the environment points git elsewhere (GIT_DIR, GIT_WORK_TREE, GIT_COMMON_DIR)."""
    if any(name in os.environ for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")):
        return None
    dot_git = worktree / ".git"
    try:
        if dot_git.is_dir() and not dot_git.is_symlink():
            return dot_git
        text = dot_git.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    admin = Path(text[len("gitdir: "):].strip())
    return admin if admin.is_absolute() else worktree / admin


def stored_head(worktree: Path, repo: Path) -> str | None:
    """The commit ``worktree`` (of the repository at ``repo``) has checked out, read from the
    files: its HEAD, and the branch it names (branches are the repository's); None whenever
    the files cannot settle it (see stored_ref): ask git then."""
    git_dir = worktree_git_dir(worktree)
    if git_dir is None:
        return None
    try:
        text = (git_dir / "HEAD").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if _OBJECT_ID.fullmatch(text):
        return text  # detached
    return stored_ref(text[len("ref: "):], repo) if text.startswith("ref: refs/heads/") \
        else None


def stored_ref(ref: str, repo: Path) -> str | None:
    """The object one full ref (``refs/...``) names, read from the files of the repository at
    ``repo`` (a checkout's root or a bare repository) without starting git; None whenever that
    cannot tell (see read_refs; a symbolic ref; no such ref): ask git then."""
    if not ref.startswith("refs/"):
        return None
    git_dir = _files_git_dir(repo)
    if git_dir is None:
        return None
    try:
        text = (git_dir / ref).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError):
        return None
    if text is not None:
        return text if _OBJECT_ID.fullmatch(text) else None
    try:
        packed = (git_dir / "packed-refs").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and _OBJECT_ID.fullmatch(sha):
            return sha
    return None


@attrs.frozen
class StoredCommit:
    """A commit's tree and parents, as its object file says."""

    tree: str
    parents: tuple[str, ...]


def stored_commit(commit: str, repo: Path) -> StoredCommit | None:
    """The tree and parents of ``commit`` read from its loose object file in the repository at
    ``repo`` (a checkout's root or a bare repository), without starting git; None whenever
    that cannot tell (a packed object, an alternate or a moved object store, not a commit):
    ask git then. (A small push is stored loose: git unpacks fewer than transfer.unpackLimit
    objects.)"""
    import zlib

    git_dir = _files_git_dir(repo)
    if git_dir is None or "GIT_OBJECT_DIRECTORY" in os.environ \
            or not _OBJECT_ID.fullmatch(commit):
        return None
    try:
        data = zlib.decompress((git_dir / "objects" / commit[:2] / commit[2:]).read_bytes())
    except (OSError, zlib.error):
        return None
    header, _, body = data.partition(b"\0")
    if header != b"commit %d" % len(body):
        return None
    tree: str | None = None
    parents: list[str] = []
    for line in body.split(b"\n"):
        if not line:
            break  # the headers end at the first empty line
        name, _, value = line.decode("ascii", "replace").partition(" ")
        if name == "tree":
            tree = value
        elif name == "parent":
            parents.append(value)
    if tree is None or not _OBJECT_ID.fullmatch(tree) \
            or not all(_OBJECT_ID.fullmatch(parent) for parent in parents):
        return None
    return StoredCommit(tree, tuple(parents))


def behind_and_ahead(local: str, upstream: str, cwd: Path) -> tuple[int, int] | None:
    """Commits ``upstream`` has that ``local`` lacks, and the reverse; None when either ref is
    missing. Two refs on the same commit are (0, 0) without a git process (the usual case)."""
    local_sha = stored_ref(local, cwd)
    if local_sha is not None and local_sha == stored_ref(upstream, cwd):
        return 0, 0
    done = git(["rev-list", "--left-right", "--count", f"{upstream}...{local}"], cwd,
               check=False)
    counts = done.stdout.split()
    if done.returncode != 0 or len(counts) != 2:
        return None
    return int(counts[0]), int(counts[1])


def changed_files(base: str, head: str, cwd: Path) -> list[str]:
    """Files that differ between the merge base of ``base`` and ``head``, and ``head``; a
    renamed file under both names (both are touched, as the GitHub forge lists them too)."""
    text = out(["diff", "--name-only", "--no-renames", "-z", f"{base}...{head}"], cwd)
    return sorted(name for name in text.split("\0") if name)


@attrs.frozen
class TreeStatus:
    """A worktree as one `git status` saw it."""

    head: str | None  # its HEAD commit (None before the first commit)
    # Tracked files with changes (staged or not), conflicts; a rename under both names.
    changed: tuple[str, ...] = ()
    untracked: tuple[str, ...] = ()  # untracked files, one by one (ignored ones not listed)

    @property
    def dirty(self) -> bool:
        return bool(self.changed or self.untracked)


# Fields before the path in `git status --porcelain=v2` entries: ordinary (1), renamed or
# copied (2, whose original path follows as the next NUL-separated entry), unmerged (u).
_V2_FIELDS = {"1": 8, "2": 9, "u": 10}


def tree_status(cwd: Path) -> TreeStatus:
    """HEAD, changed and untracked files of a worktree: one `git status`."""
    # --no-optional-locks: a read-only look, never racing an agent for the index lock.
    text = git(["--no-optional-locks", "status", "--porcelain=v2", "--branch", "-z",
                "--untracked-files=all"], cwd).stdout
    head: str | None = None
    changed: list[str] = []
    untracked: list[str] = []
    entries = iter(text.split("\0"))
    for entry in entries:
        if entry.startswith("# branch.oid "):
            oid = entry[len("# branch.oid "):]
            head = None if oid == "(initial)" else oid
        elif entry.startswith("? "):
            untracked.append(entry[2:])
        elif entry[:1] in _V2_FIELDS and entry[1:2] == " ":
            changed.append(entry.split(" ", _V2_FIELDS[entry[0]])[-1])
            if entry[0] == "2":  # a rename or copy: its original path follows
                original = next(entries, None)
                if original and entry.split(" ", 9)[8][:1] == "R":
                    changed.append(original)  # (a copy leaves its original as it was)
    return TreeStatus(head, tuple(changed), tuple(untracked))


# The summary line `git commit` prints ("[branch 1f2e...] subject") with core.abbrev=no.
_COMMITTED = re.compile(r"^\[.*? (?P<sha>[0-9a-f]{40}(?:[0-9a-f]{24})?)\] ", re.MULTILINE)


def commit_all(cwd: Path, message: str, *, identity: Mapping[str, str] | None = None,
               exclude: Sequence[str] = ()) -> str | None:
    """Stage everything but the untracked paths in ``exclude`` and commit as oxi. Returns the
    new commit, or None when there was nothing to commit.

    ``identity`` is what `identity_env` gave for the repository (worktrees share its config);
    without it the worktree is asked."""
    git(["add", "-A", "--", ".", *(f":(exclude,literal){path}" for path in exclude)], cwd)
    return commit_staged(cwd, message, identity=identity)


def stage_all(cwd: Path, *, excludes_file: Path) -> None:
    """`git add -A` with ``excludes_file`` as core.excludesFile (what the user's setting
    excludes, and more: see engine/droppings.py)."""
    git(["-c", f"core.excludesFile={excludes_file}", "add", "-A"], cwd)


def commit_staged(cwd: Path, message: str, *,
                  identity: Mapping[str, str] | None = None) -> str | None:
    """Commit what is staged as oxi (see commit_all): the new commit, or None when nothing
    was staged."""
    env = identity if identity is not None else identity_env(cwd)
    # Not quiet: the summary names the commit, which saves a `rev-parse HEAD`.
    result = git(["-c", "core.abbrev=no", "commit", "--no-verify", "-m",
                  message], cwd, env=env, check=False)
    if result.returncode == 0:
        found = _COMMITTED.search(result.stdout)
        return found.group("sha") if found else out(["rev-parse", "HEAD"], cwd)
    if not out(["diff", "--cached", "--name-only"], cwd):
        return None  # nothing to commit
    raise GitError(["git", "commit"], result.returncode, result.stderr or result.stdout)


def repo_config(cwd: Path, state_dir: Path | None = None) -> dict[str, str]:
    """What oxi reads of the repository's configuration (user.name, user.email,
    remote.*.url, url.*, core.excludesfile: git_config._READ) as git sees it there, read once
    per folder asked about per process and kept between processes in ``state_dir``
    (oxi_core/git_config.py): callers pass the repository's root."""
    if cwd not in _config_cache:
        from oxi_core.git_config import read_config

        _config_cache[cwd] = read_config(cwd, state_dir)
    return _config_cache[cwd]


def remote_url(remote: str, cwd: Path, state_dir: Path | None = None) -> str:
    """Where ``remote`` fetches from, as `git remote get-url` says (which is asked only when
    the configuration rewrites URLs: url.<base>.insteadOf)."""
    config = repo_config(cwd, state_dir)
    url = config.get(f"remote.{remote}.url")
    if url is None or any(key.startswith("url.") for key in config):
        return out(["remote", "get-url", remote], cwd)
    return url


def identity_env(cwd: Path, *, explicit: bool = False,
                 state_dir: Path | None = None) -> dict[str, str]:
    """oxi's identity, unless the repository configures its own (`repo_config`).
    ``explicit``: the repository's own identity as variables too, for a commit made in another
    repository on its behalf (the local forge's squash in the bare origin)."""
    config = repo_config(cwd, state_dir)
    name, email = config.get("user.name"), config.get("user.email")
    if not name or not email:
        return dict(OXI_IDENTITY)
    if not explicit:
        return {}
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email}


# By the folder asked about: what oxi reads of its configuration.
_config_cache: dict[Path, dict[str, str]] = {}
