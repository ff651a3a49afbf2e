"""Every ledger event type, as constants. Nothing else in oxi spells an event name."""

from __future__ import annotations

from typing import Final

# Roadmap ingest
TASK_INGESTED: Final = "task_ingested"
TASK_UPDATED: Final = "task_updated"
TASK_ABANDONED: Final = "task_abandoned"
TASK_DONE: Final = "task_done"
TASK_REOPENED: Final = "task_reopened"
ROADMAP_WARNING: Final = "roadmap_warning"
ROADMAP_UNREADABLE: Final = "roadmap_unreadable"
ROADMAP_PRUNED: Final = "roadmap_pruned"

# Dispatch
TASK_CLAIMED: Final = "task_claimed"
TASK_DEFERRED: Final = "task_deferred"
TASK_HELD: Final = "task_held"
TASK_RELEASED: Final = "task_released"
TASK_SKIPPED: Final = "task_skipped"
WORKER_STARTED: Final = "worker_started"
WORKTREE_CREATED: Final = "worktree_created"
WORKTREE_REUSED: Final = "worktree_reused"
WORKTREE_REMOVED: Final = "worktree_removed"
WORKTREE_KEPT: Final = "worktree_kept"
WORKTREE_HOOK_FAILED: Final = "worktree_hook_failed"
AGENT_EVENT: Final = "agent_event"
DISPATCH_RESULT: Final = "dispatch_result"
DISPATCH_ERROR: Final = "dispatch_error"
RETRY_SCHEDULED: Final = "retry_scheduled"
TASK_FAILED: Final = "task_failed"
TASK_RETRY_REQUESTED: Final = "task_retry_requested"
BRANCH_PUSHED: Final = "branch_pushed"
# A pushed branch whose pull request could not be opened, delivered by the next attempt
# without running the agent again.
DELIVERY_RESUMED: Final = "delivery_resumed"
BUDGET_UNDERCOUNT: Final = "budget_undercount"
TASK_CAP_EXCEEDED: Final = "task_cap_exceeded"

# Review and merge
PR_OPENED: Final = "pr_opened"
PR_CLOSED: Final = "pr_closed"
PR_MERGED: Final = "pr_merged"
PR_CONFLICTED: Final = "pr_conflicted"
CRITIC_VERDICT: Final = "critic_verdict"
AUTO_MERGE_ARMED: Final = "auto_merge_armed"
AUTO_MERGE_NOT_ARMED: Final = "auto_merge_not_armed"
AUTO_MERGE_CONFIRMED: Final = "auto_merge_confirmed"  # the forge shows it armed, read back
AUTO_MERGE_REFUSED: Final = "auto_merge_refused"  # the repository will not arm it (setting)
AUTO_MERGE_RETRIED: Final = "auto_merge_retried"  # arming failed for now; the next tick retries
PR_MERGE_WAITING: Final = "pr_merge_waiting"  # a direct merge waits (checks, mergeability)
PR_HEAD_MOVED: Final = "pr_head_moved"  # someone else pushed to the branch under review
PR_CHECKS: Final = "pr_checks"  # the head's checks changed (pending, passing, none)
PR_CHECKS_FAILED: Final = "pr_checks_failed"
PR_REVIEW_POSTED: Final = "pr_review_posted"
PR_BRANCH_DELETED: Final = "pr_branch_deleted"
TASK_MERGED: Final = "task_merged"

# The forge's own traffic
FORGE_REQUESTS: Final = "forge_requests"  # requests since the last record (one per tick)
FORGE_RATE_LIMITED: Final = "forge_rate_limited"
FORGE_RETRIED: Final = "forge_retried"  # a 5xx, malformed JSON or broken connection, retried
FORGE_UNAVAILABLE: Final = "forge_unavailable"  # retries exhausted; the next tick tries again
FORGE_NOTICE: Final = "forge_notice"  # anything else a forge reports (a truncated file list)

# Running unattended
TICK_STARTED: Final = "tick_started"
TICK_FINISHED: Final = "tick_finished"
PHASE_FAILED: Final = "phase_failed"
ZOMBIE_REAPED: Final = "zombie_reaped"
ORPHAN_KILLED: Final = "orphan_killed"
TASK_CANCELLED: Final = "task_cancelled"
DAILY_BUDGET_REACHED: Final = "daily_budget_reached"
ENGINE_PAUSED: Final = "engine_paused"
ENGINE_RESUMED: Final = "engine_resumed"
SATURATE_STARTED: Final = "saturate_started"
SATURATE_STOPPING: Final = "saturate_stopping"
SATURATE_STOPPED: Final = "saturate_stopped"
CONFIG_RELOADED: Final = "config_reloaded"
CONFIG_RELOAD_FAILED: Final = "config_reload_failed"
NOTIFY_FAILED: Final = "notify_failed"

# Agentic shadow runs
AGENTIC_SHADOW_OBSERVED: Final = "agentic_shadow_observed"

# Inference (non-agentic model calls) and routing
INFERENCE_CALL: Final = "inference_call"
INFERENCE_FAILED: Final = "inference_failed"
INFERENCE_REFUSED: Final = "inference_refused"
ROUTE_FALLBACK: Final = "route_fallback"
TRIAGE_DISABLED: Final = "triage_disabled"
CRITIC_UNAVAILABLE: Final = "critic_unavailable"
CRITIC_REASKED: Final = "critic_reasked"  # its answer was no verdict: asked again

# Auto-improve: outside ideas -> roadmap proposals (oxi_core/auto_improve/, issue 13)
AUTO_IMPROVE_SCAN_STARTED: Final = "auto_improve_scan_started"
AUTO_IMPROVE_SCAN_FINISHED: Final = "auto_improve_scan_finished"
AUTO_IMPROVE_SCAN_SKIPPED: Final = "auto_improve_scan_skipped"
AUTO_IMPROVE_SOURCE_FETCHED: Final = "auto_improve_source_fetched"
AUTO_IMPROVE_SOURCE_FAILED: Final = "auto_improve_source_failed"
AUTO_IMPROVE_BUDGET_HELD: Final = "auto_improve_budget_held"
AUTO_IMPROVE_JUDGE_FAILED: Final = "auto_improve_judge_failed"
AUTO_IMPROVE_NOISE_ALERT: Final = "auto_improve_noise_alert"
AUTO_IMPROVE_PAUSED: Final = "auto_improve_paused"
AUTO_IMPROVE_UNPAUSED: Final = "auto_improve_unpaused"
AUTO_IMPROVE_WATCHDOG_STALLED: Final = "auto_improve_watchdog_stalled"
EXTERNAL_PROPOSAL_EMITTED: Final = "external_proposal_emitted"
EXTERNAL_PROPOSAL_DEDUP_SKIPPED: Final = "external_proposal_dedup_skipped"
EXTERNAL_PROPOSAL_REJECTED_FABRICATED: Final = "external_proposal_rejected_fabricated"
EXTERNAL_PROPOSAL_SCREENED_OUT: Final = "external_proposal_screened_out"
EXTERNAL_PROPOSAL_JUDGED_OUT: Final = "external_proposal_judged_out"
EXTERNAL_PROPOSAL_ACCEPTED: Final = "external_proposal_accepted"
EXTERNAL_PROPOSAL_REJECTED: Final = "external_proposal_rejected"
