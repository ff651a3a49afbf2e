"""The README's first command: the demo runs end to end and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo" / "run_demo.py"


def test_demo_merges_both_items_and_leaves_no_worktree_or_process(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True,
                            env={**os.environ, "OXI_DEMO_DIR": str(tmp_path / "demo")},
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "T1-1 'add two numbers': merged after 1 attempt(s); critic APPROVE" in result.stdout
    assert ("T1-2 'multiply two numbers': merged after 2 attempt(s); "
            "critic REJECT then APPROVE; on origin/main") in result.stdout
    repo = tmp_path / "demo" / "calc"
    assert (repo / ".oxi" / "oxi.db").is_file()
    assert list((repo / ".oxi" / "worktrees").iterdir()) == []
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before
