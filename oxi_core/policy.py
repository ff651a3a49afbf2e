"""Where a repository's oxi state lives, and the engine policy an operator can tune."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs


@attrs.frozen
class RepoPaths:
    repo_root: Path
    roadmap: Path
    state_dir: Path
    worktrees_dir: Path

    @property
    def ledger(self) -> Path:
        return self.state_dir / "oxi.db"

    @property
    def saturate_pid(self) -> Path:
        return self.state_dir / "saturate.pid"

    @classmethod
    def under(cls, repo_root: Path, roadmap: str = "roadmap.md") -> RepoPaths:
        root = repo_root.resolve()
        return cls(root, root / roadmap, root / ".oxi", root / ".oxi" / "worktrees")


# The seed's per-task caps: $2 for Opus-class models, $0.50 for Sonnet-class ones. Keys match a
# substring of the model name; the longest matching key wins.
DEFAULT_TASK_CAPS_USD: Mapping[str, float] = {"opus": 2.0, "sonnet": 0.5}


DEFAULT_ESTIMATES_USD: Mapping[str, float] = {"opus": 1.0, "sonnet": 0.25, "haiku": 0.05}


def _by_model(table: Mapping[str, float], model: str | None) -> float | None:
    """The value whose key is the longest substring of the model's name, if any."""
    if model:
        lowered = model.lower()
        matches = [key for key in table if key.lower() in lowered]
        if matches:
            return table[max(matches, key=len)]
    return None


@attrs.frozen
class Policy:
    """Engine policy. The repository adapter supplies defaults; oxi.toml's [engine] overrides."""

    auto_merge: bool = True
    # When the forge will not arm auto-merge (a repository setting, no branch protection):
    # "wait" for a person (notified), or "direct": a guarded squash merge of the approved head
    # once its checks are green.
    auto_merge_fallback: str = attrs.field(default="wait", validator=attrs.validators.in_(
        ("wait", "direct")))
    max_concurrent: int = 1
    budget_per_day_usd: float = 20.0
    task_caps_usd: Mapping[str, float] = attrs.field(factory=lambda: dict(DEFAULT_TASK_CAPS_USD))
    default_task_cap_usd: float = 2.0
    # A task's cost estimate when it has no history: by model-name key, else the default.
    estimates_usd: Mapping[str, float] = attrs.field(
        factory=lambda: dict(DEFAULT_ESTIMATES_USD)
    )
    default_estimate_usd: float = 0.0
    base_branch: str = "main"
    remote: str = "origin"
    max_attempts: int = 3
    retry_base_s: float = 10.0
    retry_max_s: float = 300.0
    heartbeat_timeout_s: float = 1800.0
    agent_timeout_s: float = 3600.0
    stall_timeout_s: float = 300.0
    # Silence allowed before an agent's first line, instead of stall_timeout_s.
    startup_timeout_s: float = 120.0
    hook_timeout_s: float = 600.0
    tick_interval_s: float = 30.0
    # The provider plan's concurrent-session limit (see engine/probe.py): free, pro, max, team,
    # or api (no plan limit).
    plan_tier: str = "api"
    # Dollars a day each inference role may spend (critic, heartbeat-triage, ...): calls past
    # a role's cap are refused before they are made. Every role also counts toward
    # budget_per_day_usd.
    role_caps_usd: Mapping[str, float] = attrs.field(factory=dict)
    # T2-38: the reaper asks the `heartbeat-triage` model why a task got stuck.
    triage: bool = False
    # How many attempts' agent transcripts .oxi/transcripts/ keeps (the oldest go first).
    transcripts_keep: int = 200

    def task_cap_for(self, model: str | None) -> float:
        """The per-task cap for a model: the longest key that the model name contains."""
        found = _by_model(self.task_caps_usd, model)
        return self.default_task_cap_usd if found is None else found

    def default_estimate_for(self, model: str | None) -> float:
        found = _by_model(self.estimates_usd, model)
        return self.default_estimate_usd if found is None else found
