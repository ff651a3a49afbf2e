"""What an idle `oxi tick` process loads (T2-46): nothing a tick with nothing to do never uses,
and the heap frozen once oxi.toml is loaded, only in the console script's own process."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from oxi_core.builtins.local_forge import OPEN_STATE
from oxi_core.models import PullRequestState
from oxi_core.roadmap_text import text_digest
from oxi_core.testing.repos import exec_agent_toml, make_repo
from tests.conftest import roadmap

# Loaded only when a pull request is read, a task dispatched, a roadmap diffed, a git process
# started, or [auto_improve] configured; an idle tick does none of these.
# Nor are the other commands' modules (oxi_core/cli.py imports a command's module on look-up).
NOT_IN_AN_IDLE_TICK = ("oxi_core.models", "oxi_core.engine.ingest", "oxi_core.roadmap",
                       "oxi_core.auto_improve.settings", "subprocess", "hashlib", "asyncio",
                       "cattrs", "structlog", "oxi_core.agentic.cgroup",
                       *(f"oxi_core.commands.{name}" for name in (
                           "auto_improve", "dashboard", "ledger", "roadmap", "route", "setup",
                           "tasks", "worktree")))

# The console script, as `oxi tick` runs it, reporting what it loaded when it exits.
PROBE = (
    "import atexit, gc, sys\n"
    "watched = sys.argv[1].split(',')\n"
    "atexit.register(lambda: print('loaded:', [m for m in watched if m in sys.modules],\n"
    "                              'frozen:', gc.get_freeze_count() > 0, file=sys.stderr))\n"
    "sys.argv = ['oxi', *sys.argv[2:]]\n"
    "from oxi_core.cli import main\n"
    "main()\n"
)


def _idle_repo(tmp_path: Path) -> Path:
    """Two items, ingested and both merged: every later tick has nothing to do."""
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "one", "a"),
                                                      ("T1-2", "two", "b"))})
    repo.write("oxi.toml", exec_agent_toml([sys.executable, "-c", "pass"]))
    for command in (["pause"], ["tick"], ["resume"]):
        _oxi(repo.root, *command)
    conn = sqlite3.connect(repo.root / ".oxi" / "oxi.db")
    with conn:
        conn.execute("UPDATE tasks SET status = 'merged'")
    conn.close()
    return repo.root


def _oxi(cwd: Path, *argv: str, watched: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    # Without the test run's coverage, which a subprocess would start (and which loads more).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(watched), *argv], cwd=cwd,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result


def test_an_idle_tick_loads_nothing_it_does_not_use_and_freezes_the_loaded_heap(
    tmp_path: Path,
) -> None:
    root = _idle_repo(tmp_path)
    _oxi(root, "tick")  # settles the ingest mark
    result = _oxi(root, "tick", watched=NOT_IN_AN_IDLE_TICK)
    assert "nothing to do" in result.stdout
    assert "loaded: [] frozen: True" in result.stderr


def test_a_tick_with_work_still_loads_what_it_needs(tmp_path: Path) -> None:
    root = _idle_repo(tmp_path)
    conn = sqlite3.connect(root / ".oxi" / "oxi.db")
    with conn:
        conn.execute("UPDATE tasks SET status = 'planned' WHERE id = 'T1-2'")
    conn.close()
    result = _oxi(root, "tick", watched=("oxi_core.models", "asyncio"))
    assert "loaded: ['oxi_core.models', 'asyncio']" in result.stderr  # dispatched T1-2
    assert "T1-2" in result.stdout


def test_an_in_process_caller_never_freezes_its_heap(tmp_path: Path) -> None:
    """main(argv) (a test, an embedding program) keeps its garbage collectable."""
    root = _idle_repo(tmp_path)
    code = ("import gc\nfrom oxi_core.cli import main\n"
            "try:\n    main(['tick'])\nexcept SystemExit:\n    pass\n"
            "print('frozen:', gc.get_freeze_count() > 0)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "frozen: False" in result.stdout


def test_the_roadmap_digest_is_sha256() -> None:
    """The ingest mark stored by an older oxi (hashlib's sha256) still matches."""
    for text in ("", "# roadmap\n", "**T1-1 · ünïcode**\n" * 1000):
        assert text_digest(text) == hashlib.sha256(text.encode()).hexdigest()


def test_the_local_forge_lists_open_pull_requests_by_the_open_state() -> None:
    """It spells the state's value itself, so that listing none imports no models."""
    assert PullRequestState.OPEN.value == OPEN_STATE
