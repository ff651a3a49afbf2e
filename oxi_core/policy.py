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

    # Arm auto-merge on a pull request the critic approved.
    auto_merge: bool = True
    # When the forge will not arm auto-merge (a repository setting, no branch protection):
    # "wait" for a person (notified), or "direct": a guarded squash merge of the approved head
    # once its checks are green.
    auto_merge_fallback: str = attrs.field(default="wait", validator=attrs.validators.in_(
        ("wait", "direct")))
    # The most agents running at once (saturate's -j overrides it).
    max_concurrent: int = 1
    # Dollars a UTC day may spend; no dispatch passes it (saturate's --max-cost-per-day overrides
    # it).
    budget_per_day_usd: float = 20.0
    # A task's cap in dollars by model: the longest key the model's name contains wins.
    task_caps_usd: Mapping[str, float] = attrs.field(factory=lambda: dict(DEFAULT_TASK_CAPS_USD))
    # A task's cap when no task_caps_usd key matches its model.
    default_task_cap_usd: float = 2.0
    # A task's cost estimate when it has no history: by model-name key, else the default.
    estimates_usd: Mapping[str, float] = attrs.field(
        factory=lambda: dict(DEFAULT_ESTIMATES_USD)
    )
    # A task's estimate when no estimates_usd key matches its model.
    default_estimate_usd: float = 0.0
    # The branch pull requests merge into.
    base_branch: str = "main"
    # The remote oxi fetches from and pushes task branches to.
    remote: str = "origin"
    # Attempts in a round before a task fails (`oxi task retry` starts a new round).
    max_attempts: int = 3
    # The first retry's delay; it doubles with each attempt.
    retry_base_s: float = 10.0
    # The longest delay between retries.
    retry_max_s: float = 300.0
    # A claim silent this long, whose supervisor is gone, is reaped; must be well above the hook
    # and start-up timeouts.
    heartbeat_timeout_s: float = 1800.0
    # The longest an agent may run.
    agent_timeout_s: float = 3600.0
    # The longest an agent may stay silent once it has spoken.
    stall_timeout_s: float = 300.0
    # Silence allowed before an agent's first line, instead of stall_timeout_s.
    startup_timeout_s: float = 120.0
    # Seconds a worktree hook may run unless it sets its own timeout_s; then its process
    # group is killed and the task requeued.
    hook_timeout_s: float = 600.0
    # Seconds between saturate's ticks when no slot frees sooner.
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
