"""What the inference tests share: `oxi` as a whole process, a folder with two exec agents."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TWO_AGENTS_TOML = """[adapter]
class = "oxi_adapter_self.SelfAdapter"
kwargs = { repo_root = "." }
[agents.claude]
type = "exec"
kwargs = { argv = ["true"] }
[agents.codex]
type = "exec"
kwargs = { argv = ["true"] }
[roles]
worker = "claude"
"""


def oxi(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`oxi ARGS` in ``folder``; ``env`` on top of this process's (OXI_INFERENCE_OFFLINE
    dropped, so a test says whether it wants it)."""
    base = {k: v for k, v in os.environ.items() if k != "OXI_INFERENCE_OFFLINE"}
    return subprocess.run([sys.executable, "-m", "oxi_core", *args], cwd=folder, text=True,
                          capture_output=True, timeout=120, env={**base, **env})


def git_folder(folder: Path, toml: str, roadmap: str = "# roadmap\n") -> Path:
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    (folder / "roadmap.md").write_text(roadmap)
    (folder / "oxi.toml").write_text(toml)
    return folder
