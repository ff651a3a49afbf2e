"""A cgroup v2 for each run, where the host lets oxi make one: a process cannot leave it by
clearing its environment (`env -i`) or starting a new session, and one write stops it whole.

oxi makes its cgroups under its own (``0::`` in /proc/self/cgroup, below the cgroup2 mount
named in /proc/self/mountinfo), named after the run's scope (scope.py):
``<own cgroup>/oxi-<claim base>/<run suffix>``. So a later engine's reaper finds what a killed
supervisor's runs left, by name. No controller is enabled: these cgroups only group processes.

Whether this works is probed once per process (make a cgroup, move a process into it, remove
it), and then the empty cgroups that processes now gone left behind are swept. Where it does
not work (not Linux, no cgroup2 mount, read-only, EACCES, or ``OXI_NO_CGROUP=1`` in oxi's
environment), ``subtree()`` says why, and runs are found by their environment marker alone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs

MOUNTINFO = Path("/proc/self/mountinfo")
OWN_CGROUP = Path("/proc/self/cgroup")
PREFIX = "oxi-"
# Set to 1 in oxi's own environment: the environment marker alone, whatever the host offers.
DISABLE_VAR = "OXI_NO_CGROUP"
# How long a killed cgroup may take to empty before it is left for the next one who looks.
EMPTY_WAIT_S = 5.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@attrs.frozen
class Subtree:
    """Where oxi makes its cgroups (``path``, below the cgroup2 ``mount``), or why it cannot
    (``reason``)."""

    path: Path | None
    mount: Path | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.path is None:
            return f"environment marker only ({self.reason})"
        return f"cgroup v2 ({self.path})"


def _none(reason: str) -> Subtree:
    return Subtree(None, reason=reason)


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def locate(mountinfo: Path = MOUNTINFO, own_cgroup: Path = OWN_CGROUP) -> Subtree:
    """This process's cgroup v2 folder, or why there is none writable (not yet probed)."""
    try:
        own_lines = own_cgroup.read_text().splitlines()
        mounts = mountinfo.read_text().splitlines()
    except OSError as error:
        return _none(f"cannot read {error.filename}: {error.strerror}")
    own = next((line[3:] for line in own_lines if line.startswith("0::")), None)
    if own is None:
        return _none(f"this process is in no cgroup v2 ({own_cgroup} has no 0:: line)")
    for line in mounts:
        fields, _, rest = line.partition(" - ")
        parts, after = fields.split(), rest.split()
        if len(parts) < 6 or not after or after[0] != "cgroup2":
            continue
        root, mount, options = _unescape(parts[3]), Path(_unescape(parts[4])), parts[5]
        if own != root and not own.startswith(root.rstrip("/") + "/"):
            continue  # another part of the hierarchy is mounted here
        if "ro" in options.split(","):
            return _none(f"the cgroup2 mount {mount} is read-only")
        relative = own[len(root):].strip("/")
        return Subtree(mount / relative if relative else mount, mount)
    return _none(f"no cgroup2 mount holds this process's cgroup {own} ({mountinfo})")


def probe(found: Subtree) -> Subtree:
    """``found`` if a cgroup can be made in it and a process moved there, else why not."""
    if found.path is None:
        return found
    trial = found.path / f"{PREFIX}probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        trial.mkdir()
    except OSError as error:
        return _none(f"cannot make a cgroup in {found.path}: {error.strerror}")
    # A process that waits for its stdin: moved by oxi itself (which needs what the run's first
    # process needs to move itself: write access here and in oxi's own cgroup).
    try:
        child = subprocess.Popen([sys.executable, "-S", "-c", "import sys; sys.stdin.read()"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    except OSError as error:
        with contextlib.suppress(OSError):
            trial.rmdir()
        return _none(f"cannot start a process to probe with: {error}")
    reason = ""
    try:
        _write(trial / "cgroup.procs", str(child.pid))
    except OSError as error:
        reason = f"cannot move a process into a cgroup in {found.path}: {error.strerror}"
    finally:
        child.kill()
        child.wait()
        assert child.stdin is not None
        child.stdin.close()
        with contextlib.suppress(OSError):
            trial.rmdir()
    return _none(reason) if reason else found


def discover(mountinfo: Path = MOUNTINFO, own_cgroup: Path = OWN_CGROUP) -> Subtree:
    """Where this process may make cgroups, probed (``subtree()`` remembers the answer)."""
    if sys.platform != "linux":
        return _none(f"cgroups are Linux's; this is {sys.platform}")
    return probe(locate(mountinfo, own_cgroup))


def subtree() -> Subtree:
    """Where this process makes its runs' cgroups, or why it makes none."""
    return _subtree(os.environ.get(DISABLE_VAR) == "1")


@functools.cache
def _subtree(disabled: bool) -> Subtree:
    if disabled:
        return _none(f"{DISABLE_VAR}=1 is set")
    found = discover()
    if found.path is not None:
        sweep(found.path)
    return found


# The owner in a folder's name: a claim's base (task.attempt.supervisor pid.start time in
# hundredths of a second, scope.claim_scope), a process's own runs, a probe.
_OWNED = (re.compile(rf"{PREFIX}[^./]+\.\d+\.(?P<pid>\d+)\.(?P<started>\d+)"),
          re.compile(rf"{PREFIX}run\.(?P<pid>\d+)"),
          re.compile(rf"{PREFIX}probe-(?P<pid>\d+)-[0-9a-f]+"))


def _owner_gone(name: str) -> bool:
    import psutil

    for pattern in _OWNED:
        if (match := pattern.fullmatch(name)) is None:
            continue
        pid = int(match.group("pid"))
        if pid == 0:
            return False
        try:
            started = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            return False
        recorded = match.groupdict().get("started")
        return recorded is not None and abs(round(started * 100) - int(recorded)) > 1
    return False  # not a name oxi gives


def sweep(parent: Path) -> list[Path]:
    """Remove the empty cgroups in ``parent`` that processes now gone left behind (a
    supervisor killed before its runs ended, whose claims no engine reaped). Returns them."""
    removed: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            path = Path(entry.path)
            if (entry.is_dir(follow_symlinks=False) and entry.name.startswith(PREFIX)
                    and not _populated(path) and _owner_gone(entry.name)
                    and remove(path, timeout_s=0.0)):
                removed.append(path)
    return removed


def _name(part: str) -> str:
    return _UNSAFE.sub("_", part) or "_"


def claim_folder(parent: Path, base: str) -> Path:
    """The cgroup holding every run of the scope base ``base`` (a claim, or a process)."""
    return parent / (PREFIX + _name(base))


def run_folder(parent: Path, scope: str) -> Path:
    """The cgroup of one run, ``scope`` being ``<base>/<run>``."""
    base, _, run = scope.rpartition("/")
    return claim_folder(parent, base) / _name(run)


def make_run_cgroup(scope: str, tree: Subtree | None = None) -> Path | None:
    """The new, empty cgroup of run ``scope``; None where there is none to be had."""
    tree = tree or subtree()
    if tree.path is None:
        return None
    path = run_folder(tree.path, scope)
    for _ in range(3):  # another run of the claim may remove the empty claim folder meanwhile
        try:
            path.mkdir(parents=True, exist_ok=True)
            return path
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def joiner(path: Path) -> Callable[[], None]:
    """For a forked child before it execs: move itself into ``path``, so everything it starts
    is there from the first instruction on. Tiny and exception-free; if it cannot, the run
    still has its process group and environment marker."""
    procs = path / "cgroup.procs"

    def join() -> None:
        with contextlib.suppress(OSError):
            _write(procs, "0")  # "0": the writing process itself

    return join


def scope_cgroups(scope: str, *, prefix: bool = False, tree: Subtree | None = None,
                  ) -> list[Path]:
    """The cgroups that exist for ``scope`` (with ``prefix``: for every run of the base
    ``scope``, made by this process or, failing that, anywhere below the cgroup2 mount)."""
    tree = tree or subtree()
    if tree.path is None:
        return []
    if not prefix:
        path = run_folder(tree.path, scope)
        return [path] if path.is_dir() else []
    path = claim_folder(tree.path, scope)
    if path.is_dir():
        return [path]
    # A supervisor started elsewhere (another login session, another unit) made it elsewhere.
    return list(_find(tree.mount or tree.path, path.name))


def _find(top: Path, name: str) -> Iterator[Path]:
    stack = [top]
    while stack:
        folder = stack.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.name == name:
                    yield Path(entry.path)
                else:
                    stack.append(Path(entry.path))


def _tree(path: Path) -> list[Path]:
    """``path`` and every cgroup below it, deepest first."""
    below: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                below.extend(_tree(Path(entry.path)))
    return [*below, path]


def members(paths: Iterable[Path]) -> set[int]:
    """The pids in the cgroups ``paths`` and below them (never this process, nor a 0 that
    stands for a process of another pid namespace: os.kill(0) would signal our own group)."""
    pids: set[int] = set()
    for path in paths:
        for folder in _tree(path):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in (folder / "cgroup.procs").read_text().split())
    return pids - {0, os.getpid()}


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _populated(path: Path) -> bool:
    try:
        return "populated 1" in (path / "cgroup.events").read_text()
    except OSError:
        return False


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def kill(path: Path, *, kill_file: bool | None = None) -> None:
    """SIGKILL every process in ``path`` and below it. cgroup.kill where the kernel has it
    (5.14); else freeze the cgroup so nothing forks meanwhile, SIGKILL each member, thaw.
    ``kill_file=False`` takes the second way even where the first exists."""
    if kill_file is None:
        kill_file = (path / "cgroup.kill").exists()
    with contextlib.suppress(OSError):
        if kill_file:
            _write(path / "cgroup.kill", "1")
            return
        frozen = False
        with contextlib.suppress(OSError):
            _write(path / "cgroup.freeze", "1")
            frozen = _wait(lambda: "frozen 1" in (path / "cgroup.events").read_text(), 1.0)
        try:
            for _ in range(1 if frozen else 3):  # unfrozen, a member may fork meanwhile
                for pid in members([path]):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            with contextlib.suppress(OSError):
                _write(path / "cgroup.freeze", "0")  # a frozen process dies only once thawed


def remove(path: Path, *, timeout_s: float = EMPTY_WAIT_S) -> bool:
    """Remove ``path`` and the cgroups below it once they are empty (within ``timeout_s``),
    then its parent if that was oxi's claim folder and is empty now. True if it is gone."""
    if not _wait(lambda: not _populated(path), timeout_s):
        return False
    for folder in _tree(path):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # busy: something joined it meanwhile
            return False
    parent = path.parent
    if parent.name.startswith(PREFIX) and not path.name.startswith(PREFIX):  # a run's
        with contextlib.suppress(OSError):  # busy: another run of the claim is in it
            parent.rmdir()
    return True


def end(paths: Iterable[Path]) -> None:
    """Kill what is left in ``paths`` and remove them."""
    for path in paths:
        kill(path)
        remove(path)
