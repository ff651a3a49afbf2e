"""The protocols that registered plugin classes implement.

A plugin registers a class (usually an attrs class whose fields are its oxi.toml kwargs); oxi
builds one instance per configured name and then calls the plain methods below. A class that
needs the running engine's context (paths, the ledger) may also define ``bind(context)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from oxi_core.agentic.types import DispatchRequest, DispatchResult, Usage
    from oxi_core.auto_improve.settings import AutoImproveSettings
    from oxi_core.engine.state import EngineState
    from oxi_core.ledger import Ledger
    from oxi_core.models import (
        Candidate,
        Event,
        ForgeReport,
        GateDecision,
        InferenceResult,
        MergeAttempt,
        PullRequest,
        Verdict,
    )
    from oxi_core.policy import Policy, RepoPaths
    from oxi_core.tasks import Task


@runtime_checkable
class AgenticAdapter(Protocol):
    """An agentic coding CLI (Claude Code, Codex, a script) that works in a worktree."""

    async def invoke(self, request: DispatchRequest) -> DispatchResult:
        """Run the agent to completion; never raise for agent failures, classify them."""
        ...

    def version(self) -> str:
        """The agent binary's version (or the plugin's, when there is no binary)."""
        ...

    def model_id(self) -> str:
        """The model this adapter will ask for, as the provider names it."""
        ...

    def usage_normalizer(self, raw: Mapping[str, Any]) -> Usage:
        """Turn the CLI's own usage record into oxi's Usage (totals, not deltas)."""
        ...

    def tool_translator(self, name: str) -> str:
        """Map the CLI's tool name onto oxi's canonical tool vocabulary."""
        ...


@runtime_checkable
class InferenceTarget(Protocol):
    """A non-agentic model endpoint (a LiteLLM gateway, OpenRouter, xAI)."""

    async def complete(
        self, messages: Sequence[Mapping[str, Any]], model: str, max_tokens: int, **kwargs: Any
    ) -> InferenceResult: ...


@runtime_checkable
class Source(Protocol):
    """An auto-improve source of outside ideas."""

    def fetch(self, since: datetime) -> list[Candidate]:
        """The candidates published after ``since``; raise ``SourceError`` when it cannot read."""
        ...


@runtime_checkable
class Gate(Protocol):
    """Decides, before a task is claimed, whether it may be dispatched now."""

    def check(self, task: Task, state: EngineState) -> GateDecision: ...


@runtime_checkable
class Judge(Protocol):
    """Judges a subject: a PullRequestSubject for critics, a Candidate for proposals."""

    def judge(self, subject: Any) -> Verdict: ...


@runtime_checkable
class Notifier(Protocol):
    def notify(self, event: Event) -> None: ...


@runtime_checkable
class Forge(Protocol):
    """A code host: pull requests, their files, auto-merge, and what landed on main.

    Optional: ``merged_prs(since: datetime) -> list[PullRequest]``, the pull requests merged at
    or after ``since`` with their bodies; auto-improve ranking reads the last 90 days of them
    (a forge without it contributes none).
    """

    def open_pr(self, *, task_id: str, branch: str, title: str, body: str) -> PullRequest:
        """Open (or return the already open) pull request for ``branch``."""
        ...

    def get_pr(self, number: int) -> PullRequest: ...

    def list_open_prs(self) -> list[PullRequest]:
        """Open pull requests opened by oxi, each with its changed files."""
        ...

    def arm_auto_merge(self, number: int) -> bool:
        """Arm auto-merge (squash). Idempotent: returns False when it was already armed."""
        ...

    def close_pr(self, number: int, comment: str) -> None: ...

    def comment(self, number: int, body: str) -> None: ...


class ForgeExtras(Protocol):
    """Optional Forge methods. A forge defines those it can; oxi_core.forge_extras gives the
    engine the behaviour for a forge that lacks one (hookspecs.md lists each)."""

    def git_env(self) -> Mapping[str, str]:
        """Environment for git's fetch and push to the remote (credentials), added to those
        git processes only."""
        ...

    def review(self, number: int, body: str) -> None:
        """Post the critic's findings as a review of the pull request (else: a comment)."""
        ...

    def merge_now(self, number: int, *, head_sha: str) -> MergeAttempt:
        """A guarded direct squash merge of exactly ``head_sha``, when its checks are green."""
        ...

    def disarm_auto_merge(self, number: int) -> bool:
        """Turn auto-merge off (the head moved under an approval); True when it was on."""
        ...

    def delete_branch(self, branch: str) -> None:
        """Delete a merged pull request's branch on the remote."""
        ...

    def merge_if_ready(self, number: int) -> PullRequest:
        """Merge an armed pull request whose conditions hold (a forge that merges for itself,
        like GitHub, does not need this)."""
        ...

    def take_report(self) -> ForgeReport:
        """Requests made since the last call, and notices (rate limits, retries) to record."""
        ...


@runtime_checkable
class RepositoryAdapter(Protocol):
    """Where a repository keeps its roadmap, state and worktrees, and the engine's policy."""

    def paths(self) -> RepoPaths: ...

    def policy(self) -> Policy: ...


class PluginContext(Protocol):
    """What a plugin's optional ``bind(context)`` receives."""

    @property
    def paths(self) -> RepoPaths: ...

    @property
    def config_dir(self) -> Path: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def auto_improve(self) -> AutoImproveSettings:
        """The [auto_improve] settings: sources read their account lists here."""
        ...
