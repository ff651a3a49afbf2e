"""The repository adapter for a git repository that keeps its roadmap at its root.

``SelfAdapter(repo_root=...)`` tells the engine where the roadmap, the ``.oxi/`` state folder
and the worktrees live, and the policy it runs under. Every field is an oxi.toml kwarg:

    [adapter]
    class = "oxi_adapter_self.SelfAdapter"
    kwargs = { repo_root = ".", max_concurrent = 2, budget_per_day_usd = 10.0 }
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from oxi_core.policy import DEFAULT_TASK_CAPS_USD, Policy, RepoPaths

__all__ = ["SelfAdapter"]


@attrs.frozen
class SelfAdapter:
    # The repository's checkout (relative to oxi.toml's folder); it must exist.
    repo_root: Path
    # The roadmap file, relative to repo_root.
    roadmap: str = "roadmap.md"
    # oxi's state folder (the ledger, transcripts, worktrees), relative to repo_root.
    state_dir: str = ".oxi"
    # The seed's dogfood policy: auto-merge on, $20/day, serial dispatch. Default for [engine]
    # auto_merge.
    auto_merge: bool = True
    # Default for [engine] max_concurrent.
    max_concurrent: int = 1
    # Default for [engine] budget_per_day_usd.
    budget_per_day_usd: float = 20.0
    # Default for [engine] task_caps_usd.
    task_caps_usd: Mapping[str, float] = attrs.field(factory=lambda: dict(DEFAULT_TASK_CAPS_USD))
    # Default for [engine] default_task_cap_usd.
    default_task_cap_usd: float = 2.0
    # Default for [engine] base_branch.
    base_branch: str = "main"
    # Default for [engine] remote.
    remote: str = "origin"

    def paths(self) -> RepoPaths:
        root = Path(self.repo_root).resolve()
        state = root / self.state_dir
        return RepoPaths(root, root / self.roadmap, state, state / "worktrees")

    def policy(self) -> Policy:
        return Policy(
            auto_merge=self.auto_merge,
            max_concurrent=self.max_concurrent,
            budget_per_day_usd=self.budget_per_day_usd,
            task_caps_usd=dict(self.task_caps_usd),
            default_task_cap_usd=self.default_task_cap_usd,
            base_branch=self.base_branch,
            remote=self.remote,
        )
