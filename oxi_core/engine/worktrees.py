"""Git worktrees for tasks: sanitised names, idempotent creation, and never losing work.

Titles can come from outside text, so nothing here trusts them: branch and folder names are
built from a strict alphabet, every path must stay under ``.oxi/worktrees/``, and a symlink
anywhere on the way is refused, at creation and at removal.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path

import attrs

from oxi_core import git
from oxi_core.engine.droppings import split_droppings
from oxi_core.errors import WorktreeError
from oxi_core.git_index import FreshIndex, fresh_index
from oxi_core.policy import RepoPaths

_SAFE_ID = re.compile(r"^T\d+-[A-Za-z0-9]+$")
_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
SLUG_MAX = 40


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _SLUG_CHARS.sub("-", ascii_text.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-") or "task"


def safe_task_id(task_id: str) -> str:
    if not _SAFE_ID.match(task_id):
        raise WorktreeError(f"refusing task id {task_id!r} as a path component",
                            hint="roadmap ids look like T1-23 or T1-B5")
    return task_id


def branch_name(task_id: str, title: str) -> str:
    return f"oxi/{safe_task_id(task_id)}-{slugify(title)}"


@attrs.frozen
class Worktree:
    path: Path
    branch: str
    reused: bool = False
    prepared: bool = False  # made ahead, before its task was claimed (engine/prepared.py)
    # Its index as git wrote it, for a delivery without `git status` (git_index.py); None
    # for a worktree reused or continued, or one whose files this reader cannot settle.
    fresh_index: FreshIndex | None = None


def _refuse_symlinks(paths: RepoPaths, target: Path) -> None:
    """Every component from the repository root down to ``target`` must be a real folder."""
    root = paths.repo_root
    relative = target.relative_to(root)
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise WorktreeError(f"refusing {target}: {current} is a symlink",
                                hint="remove the symlink; oxi keeps worktrees in real folders")


def worktree_path(paths: RepoPaths, task_id: str) -> Path:
    """The folder for a task's worktree, checked to stay under the worktrees folder."""
    base = paths.worktrees_dir
    target = base / safe_task_id(task_id)
    if not target.resolve().is_relative_to(base.resolve()) or target.parent != base:
        raise WorktreeError(f"refusing {target}: outside {base}")
    _refuse_symlinks(paths, target)
    return target


def _registered_worktrees(repo: Path) -> dict[Path, str | None]:
    """Registered worktrees and the branch each has checked out."""
    found: dict[Path, str | None] = {}
    current: Path | None = None
    for line in git.out(["worktree", "list", "--porcelain"], repo).splitlines():
        if line.startswith("worktree "):
            current = Path(line[len("worktree "):])
            found[current] = None
        elif line.startswith("branch ") and current is not None:
            found[current] = line[len("branch refs/heads/"):]
    return found


def ensure_worktree(
    paths: RepoPaths, task_id: str, branch: str, *, base_ref: str, remote: str,
    fresh: bool = False, first: bool = False,
) -> Worktree:
    """Create the task's worktree on ``branch``, or reuse it. Safe to call again after a crash.

    A branch left by an earlier attempt (locally or on the remote) is continued, so a second
    attempt after a rejection builds on the first; ``fresh`` starts over from ``base_ref``.
    ``first``: neither the ledger nor the remote (as last fetched) knows of a branch for this
    task, so it is created without looking for one first; if one exists after all, git
    refuses and the careful path runs.
    """
    repo = paths.repo_root
    target = worktree_path(paths, task_id)
    paths.worktrees_dir.mkdir(parents=True, exist_ok=True)
    _refuse_symlinks(paths, target)
    if not target.exists() and not target.is_symlink():
        # The common case: nothing in the way. A first attempt is one `worktree add`; any
        # other looks at the branch first (one for-each-ref), then adds.
        if first and not fresh:
            added = add_new_worktree(paths, task_id, branch, base_ref=base_ref)
            if added is not None:
                return added
        if _add_worktree(repo, target, branch, base_ref=base_ref, remote=remote, fresh=fresh,
                         strict=False):
            return Worktree(target, branch, fresh_index=fresh_index(target, repo))
    # Something is in the way (a crash's leftovers, a folder deleted by hand, the branch checked
    # out elsewhere): look at every registered worktree and clear up.
    registered = _registered_worktrees(repo)
    resolved = target.resolve()
    if any(not path.exists() for path in registered):
        git.git(["worktree", "prune"], repo)  # a worktree folder deleted by hand
        registered = _registered_worktrees(repo)
    if resolved in registered:
        if registered[resolved] == branch and not fresh and (target / ".git").exists():
            return Worktree(target, branch, reused=True)
        git.git(["worktree", "remove", "--force", str(target)], repo)
    elif target.exists():
        # A folder git does not know: debris from a crash mid-`worktree add`.
        shutil.rmtree(target)
    for other, other_branch in registered.items():
        if other_branch == branch and other != resolved:
            raise WorktreeError(f"branch {branch} is checked out at {other}",
                                hint="remove that worktree, or let oxi's sweep handle it")
    _add_worktree(repo, target, branch, base_ref=base_ref, remote=remote, fresh=fresh,
                  strict=True)
    return Worktree(target, branch, fresh_index=fresh_index(target, repo))


def add_new_worktree(paths: RepoPaths, task_id: str, branch: str, *,
                     base_ref: str) -> Worktree | None:
    """The task's worktree on a new ``branch`` from ``base_ref`` when nothing is in the way
    (no folder, no such branch): one `worktree add`, which touches only what is its own (the
    new folder, its admin folder, the new branch), so it may run beside pushes and other adds
    (a shared repository lock). None when anything is in the way: `ensure_worktree` (under
    the exclusive lock) then looks and clears up."""
    target = worktree_path(paths, task_id)
    paths.worktrees_dir.mkdir(parents=True, exist_ok=True)
    _refuse_symlinks(paths, target)
    if target.exists() or target.is_symlink():
        return None
    argv = ["worktree", "add", "--no-track", "-b", branch, str(target), base_ref]
    if git.git(argv, paths.repo_root, check=False).returncode != 0:
        return None
    return Worktree(target, branch, fresh_index=fresh_index(target, paths.repo_root))


def _add_worktree(repo: Path, target: Path, branch: str, *, base_ref: str, remote: str,
                  fresh: bool, strict: bool) -> bool:
    """Add the worktree at ``target``: on the local branch if there is one, else a new branch
    from the remote's (continuing an earlier attempt), else from ``base_ref``; ``fresh``
    always starts from ``base_ref``. Not ``strict``: False instead of an error when the branch
    is checked out somewhere or git refuses (the careful path then clears up)."""
    local_ref, remote_ref = f"refs/heads/{branch}", f"refs/remotes/{remote}/{branch}"
    found: dict[str, str] = {}  # ref -> the worktree that has it checked out ("" if none)
    listing = git.out(["for-each-ref", "--format=%(refname)%00%(worktreepath)", local_ref,
                       remote_ref], repo)
    for line in listing.splitlines():
        name, _, checked_out_at = line.partition("\0")
        found[name] = checked_out_at
    if found.get(local_ref) and not strict:
        return False  # checked out in some worktree, maybe one whose folder is gone
    if fresh and local_ref in found:
        git.git(["branch", "-D", branch], repo)
        del found[local_ref]
    if local_ref in found:
        argv = ["worktree", "add", str(target), branch]
    elif not fresh and remote_ref in found:
        argv = ["worktree", "add", "--no-track", "-b", branch, str(target), f"{remote}/{branch}"]
    else:
        argv = ["worktree", "add", "--no-track", "-b", branch, str(target), base_ref]
    return git.git(argv, repo, check=strict).returncode == 0


UNCOMMITTED = "uncommitted changes"


def unpushed_work(path: Path, *, branch: str, remote: str) -> str | None:
    """Why removing this worktree would lose work, or None when everything is on the remote.
    Build droppings (bytecode, caches, installed dependencies) are not work."""
    status = git.tree_status(path)
    if status.changed or split_droppings(status.untracked)[0]:
        return UNCOMMITTED
    return unpushed_commits(path, branch=branch, remote=remote)


def unpushed_commits(path: Path, *, branch: str, remote: str) -> str | None:
    """Why this worktree's commits would be lost with it, or None when the remote has them."""
    # Commits reachable from HEAD but from no ref of the remote exist only here.
    result = git.git(["rev-list", "-n", "1", "HEAD", "--not", f"--remotes={remote}"], path,
                     check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    if git.remote_branch_sha(remote, branch, path) is not None:
        return f"commits not pushed to {remote}/{branch}"
    return f"commits that exist only in this worktree (no {remote}/{branch})"


def _check_removable(paths: RepoPaths, path: Path) -> None:
    """Removal only ever touches a real folder directly under the worktrees folder."""
    base = paths.worktrees_dir
    if path.parent != base or not path.resolve().is_relative_to(base.resolve()):
        raise WorktreeError(f"refusing to remove {path}: outside {base}")
    _refuse_symlinks(paths, path)


def remove_worktree(
    paths: RepoPaths, path: Path, *, branch: str, remote: str, force: bool = False,
    discard_uncommitted: bool = False,
) -> str | None:
    """Remove a worktree whose work is safely on the remote. Returns why it was kept, if it was.
    ``discard_uncommitted``: uncommitted changes may go, commits on no remote branch never."""
    _check_removable(paths, path)
    if not path.exists():
        git.git(["worktree", "prune"], paths.repo_root)
        return None
    if not force:
        reason = unpushed_work(path, branch=branch, remote=remote)
        if reason == UNCOMMITTED and discard_uncommitted:
            reason = unpushed_commits(path, branch=branch, remote=remote)
        if reason:
            return reason
    git.git(["worktree", "remove", "--force", str(path)], paths.repo_root)
    return None


def remove_delivered_worktree(paths: RepoPaths, path: Path, *, branch: str, remote: str,
                              seen_clean: bool = False) -> str | None:
    """Remove a worktree whose HEAD was just pushed (or never moved from the base commit):
    `remove_clean_worktree`, else the full check (which keeps a tree with uncommitted work
    and says why)."""
    if remove_clean_worktree(paths, path, seen_clean=seen_clean):
        return None
    return remove_worktree(paths, path, branch=branch, remote=remote)


def remove_clean_worktree(paths: RepoPaths, path: Path, *, seen_clean: bool = False,
                          excludes_file: Path | None = None) -> bool:
    """Remove a worktree whose HEAD is on the remote (just pushed, or the base commit) when
    git finds it clean; False when it did not remove it (for the full check).

    Nothing committed can be lost, so git's own check suffices: `worktree remove` without
    --force refuses a tree with uncommitted or untracked changes. ``seen_clean``: the caller's
    own `git status`, after the agent's process group was gone, found nothing uncommitted, so
    git need not look again. ``excludes_file``: git's look leaves out what it excludes (the
    droppings: engine/droppings.py), as the delivery's `git add` did."""
    _check_removable(paths, path)
    config = [] if excludes_file is None else ["-c", f"core.excludesFile={excludes_file}"]
    argv = [*config, "worktree", "remove", *(["--force"] if seen_clean else []), str(path)]
    return path.exists() and git.git(argv, paths.repo_root, check=False).returncode == 0


def _sweep_shadows(paths: RepoPaths, folder: Path, busy: set[str]) -> list[tuple[Path, str | None]]:
    """Shadow worktrees hold observed-only work: whatever a crash left is removed."""
    removed: list[tuple[Path, str | None]] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() or entry.name.rsplit("-", 1)[0] in busy:
            continue
        git.git(["worktree", "remove", "--force", str(entry)], paths.repo_root, check=False)
        if entry.exists():
            shutil.rmtree(entry)
        removed.append((entry, None))
    return removed


@attrs.frozen
class Leftover:
    """A folder under the worktrees folder, as `oxi worktree list` shows it."""

    path: Path
    branch: str | None  # None: not a worktree git knows (crash debris), or a symlink
    holds: str | None  # what removing it would lose (None: nothing)


def list_worktrees(paths: RepoPaths, *, remote: str) -> list[Leftover]:
    """Every task worktree folder, with what removing it would lose (nothing is changed)."""
    base = paths.worktrees_dir
    if not base.is_dir() or base.is_symlink():
        return []
    registered = _registered_worktrees(paths.repo_root)
    found: list[Leftover] = []
    for entry in sorted(base.iterdir()):
        if entry.is_symlink():
            found.append(Leftover(entry, None, "a symlink; left alone"))
            continue
        if not _SAFE_ID.match(entry.name):
            continue
        branch = registered.get(entry.resolve())
        holds = unpushed_work(entry, branch=branch, remote=remote) if branch else None
        found.append(Leftover(entry, branch, holds))
    return found


def sweep_worktrees(
    paths: RepoPaths, *, remote: str, busy: set[str], discard_uncommitted: bool = False,
) -> list[tuple[Path, str | None]]:
    """Remove leftover worktrees (not in ``busy`` task ids), keeping any with unpushed work
    (``discard_uncommitted``: uncommitted changes may go, unpushed commits never).

    Returns each leftover and why it was kept (None when it was removed).
    """
    base = paths.worktrees_dir
    if not base.exists():
        return []
    if base.is_symlink():
        raise WorktreeError(f"refusing {base}: it is a symlink")
    registered = _registered_worktrees(paths.repo_root)
    results: list[tuple[Path, str | None]] = []
    for entry in sorted(base.iterdir()):
        if entry.name == "shadow" and entry.is_dir() and not entry.is_symlink():
            results.extend(_sweep_shadows(paths, entry, busy))
            continue
        if entry.name in busy:
            continue
        if entry.is_symlink():
            results.append((entry, "a symlink; left alone"))
            continue
        if not _SAFE_ID.match(entry.name):
            continue
        branch = registered.get(entry.resolve())
        if branch is None:
            if entry.resolve() not in registered and entry.is_dir():
                shutil.rmtree(entry)  # not a worktree git knows: crash debris
                results.append((entry, None))
            continue
        kept = remove_worktree(paths, entry, branch=branch, remote=remote,
                               discard_uncommitted=discard_uncommitted)
        results.append((entry, kept))
    git.git(["worktree", "prune"], paths.repo_root)
    return results
