"""Codex's sandbox on the host it runs on: a helper on its PATH, and a self-test before work.

On Linux codex confines commands with bubblewrap, preferring a ``bwrap`` from PATH over the one
it bundles. A system bubblewrap older than 0.9 (Debian 12's 0.8, which flatpak pulls in) has no
``--argv0``; codex then re-executes itself under the name ``codex-linux-sandbox`` looked up on
PATH, and that name exists only in a helper folder codex creates itself, and never under a
temporary folder. Without it the sandbox fails (``bwrap: execvp codex-linux-sandbox: No such
file or directory``) and every command is refused. oxi keeps such a folder of its own, outside
temporary folders (a sandboxed command could otherwise replace what is in it), holding a
``codex-linux-sandbox`` link to the native codex binary, first on the agent's PATH.

Whatever the cause (a bubblewrap that is too old, user namespaces disabled), the self-test runs
one command through ``codex sandbox`` with the agent's own environment before any work: about
a tenth of a second, and a setup error naming the cause and the fix instead of tasks that fail
after spending money.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

SANDBOX_HELPER = "codex-linux-sandbox"
# The permission profile `codex sandbox` applies for each `--sandbox` mode (none: no sandbox).
PROFILES: Mapping[str, str] = {"workspace-write": ":workspace", "read-only": ":read-only"}
PROBE = "probe"
SELF_TEST_TIMEOUT_S = 60.0  # a tenth of a second here; generous for a loaded host
_TRIPLES = {"x86_64": "x86_64-unknown-linux-musl", "aarch64": "aarch64-unknown-linux-musl"}
# Folders any process may write to (never used to write: only to refuse keeping the helper there).
_TEMPORARY = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108


def native_binary(binary: str) -> Path | None:
    """The native codex executable behind ``binary`` (npm's ``codex`` is a node script that
    starts ``vendor/<triple>/bin/codex`` of a platform package); None when not found."""
    found = shutil.which(binary)
    if found is None:
        return None
    path = Path(found).resolve()
    with contextlib.suppress(OSError), path.open("rb") as handle:
        if handle.read(4) == b"\x7fELF":
            return path
    triple = _TRIPLES.get(platform.machine())
    if triple is None:
        return None
    package = path.parent.parent  # node_modules/@openai/codex (bin/codex.js)
    candidates = [package / "vendor" / triple / "bin" / "codex",
                  *package.parent.glob(f"codex-*/vendor/{triple}/bin/codex")]
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def under_a_temporary_folder(path: Path) -> bool:
    roots = {Path(tempfile.gettempdir()).resolve(), *(Path(r) for r in _TEMPORARY)}
    resolved = path.resolve()
    return any(resolved == root or root in resolved.parents for root in roots)


def helper_folder(binary: str) -> Path | None:
    """Where the ``codex-linux-sandbox`` link for ``binary`` lives (Linux), or None: not Linux,
    no native binary found, or no home outside temporary folders to keep it in."""
    if sys.platform != "linux":
        return None
    native = native_binary(binary)
    if native is None:
        return None
    base = Path.home() / ".oxi" / "codex-bin"
    if under_a_temporary_folder(base):
        return None
    return base / hashlib.sha256(str(native).encode()).hexdigest()[:12]


def ensure_helper(binary: str) -> Path | None:
    """Create (or repair) the helper folder for ``binary``; its path, or None."""
    folder = helper_folder(binary)
    native = native_binary(binary)
    if folder is None or native is None:
        return None
    link = folder / SANDBOX_HELPER
    if link.is_symlink() and link.resolve() == native:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{SANDBOX_HELPER}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(native)
    os.replace(temporary, link)  # atomic: engines starting together never see half a link
    return folder


def with_helper_first(env: Mapping[str, str], folder: Path | None) -> dict[str, str]:
    """``env`` with ``folder`` first on its PATH (when there is one)."""
    result = dict(env)
    if folder is not None and folder.is_dir():
        result["PATH"] = os.pathsep.join(filter(None, (str(folder), env.get("PATH", ""))))
    return result


def sandbox_problem(binary: str, sandbox: str, env: Mapping[str, str]) -> str | None:
    """Run one command in codex's sandbox as an agent run would (same binary, environment and
    mode); what went wrong, or None when it works (and always for an unsandboxed mode)."""
    profile = PROFILES.get(sandbox)
    if profile is None:
        return None
    with tempfile.TemporaryDirectory(prefix="oxi-codex-sandbox-") as folder:
        command = f"echo ok > {PROBE}" if sandbox == "workspace-write" else "true"
        try:
            done = subprocess.run(
                [binary, "sandbox", "-P", profile, "-C", folder, "--", "sh", "-c", command],
                env=dict(env), cwd=folder, capture_output=True, text=True,
                stdin=subprocess.DEVNULL, timeout=SELF_TEST_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"`codex sandbox` did not run: {type(error).__name__}: {error}"
        wrote = sandbox != "workspace-write" or (Path(folder) / PROBE).is_file()
        if done.returncode == 0 and wrote:
            return None
        said = [line.strip() for line in done.stderr.splitlines()
                if line.strip() and not line.startswith("WARNING:")]
        return "; ".join(said[-3:]) or f"`codex sandbox` exited {done.returncode}"


def bubblewrap_on(env: Mapping[str, str]) -> str:
    """The system bubblewrap codex would meet on ``env``'s PATH, with its version."""
    found = shutil.which("bwrap", path=env.get("PATH"))
    if found is None:
        return "no bwrap on the agent's PATH (codex uses the one it bundles)"
    try:
        version = subprocess.run([found, "--version"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "version unknown"
    return f"{found} ({version or 'version unknown'})"
