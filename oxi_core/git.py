"""Thin, typed wrappers over the git command line (argv lists only, never a shell)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from oxi_core.errors import GitError

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
    argv = ["git", *args]
    try:
        result = subprocess.run(
            argv, cwd=cwd, env=_env(env), capture_output=True, text=True, timeout=timeout_s,
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


def changed_files(base: str, head: str, cwd: Path) -> list[str]:
    """Files that differ between the merge base of ``base`` and ``head``, and ``head``."""
    text = out(["diff", "--name-only", "-z", f"{base}...{head}"], cwd)
    return sorted(name for name in text.split("\0") if name)


def is_dirty(cwd: Path) -> bool:
    return bool(out(["status", "--porcelain", "--untracked-files=all"], cwd))


def commit_all(cwd: Path, message: str) -> bool:
    """Stage everything and commit as oxi. Returns False when there was nothing to commit."""
    git(["add", "-A"], cwd)
    result = git(["commit", "--no-verify", "-q", "-m", message], cwd, env=identity_env(cwd),
                 check=False)
    if result.returncode == 0:
        return True
    if not out(["status", "--porcelain"], cwd):
        return False  # nothing to commit
    raise GitError(["git", "commit"], result.returncode, result.stderr or result.stdout)


def identity_env(cwd: Path) -> dict[str, str]:
    """oxi's identity, unless the repository configures its own (one git call, cached)."""
    root = out(["rev-parse", "--git-common-dir"], cwd)
    key = (cwd / root).resolve() if not Path(root).is_absolute() else Path(root)
    if key not in _identity_cache:
        names = git(["config", "--get-regexp", r"^user\.(name|email)$"], cwd, check=False)
        found = {line.split(" ", 1)[0] for line in names.stdout.splitlines()}
        _identity_cache[key] = {} if {"user.name", "user.email"} <= found else dict(OXI_IDENTITY)
    return _identity_cache[key]


_identity_cache: dict[Path, dict[str, str]] = {}
