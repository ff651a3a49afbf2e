"""A task's story from the ledger: each attempt with its outcome, reason, cost and where the
figure came from, its pull request, the critic's findings, its worktree and the tail of what
the agent said (`oxi task show`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oxi_core.engine.transcripts import transcript_path, transcript_tail
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import Event
from oxi_core.policy import RepoPaths
from oxi_core.tasks import Task

# Events that end an attempt one way or another: the attempt's outcome is the last of them.
_OUTCOMES = {
    ev.TASK_MERGED: "merged", ev.TASK_FAILED: "failed", ev.RETRY_SCHEDULED: "retrying",
    ev.TASK_REOPENED: "rejected by the critic", ev.PR_CONFLICTED: "conflicted",
    ev.PR_CLOSED: "closed", ev.TASK_CANCELLED: "cancelled", ev.ZOMBIE_REAPED: "reaped",
    ev.DISPATCH_ERROR: "error", ev.PR_OPENED: "in review",
}


def task_row(task: Task) -> dict[str, Any]:
    """One task as `oxi task list` shows it: where it stands, and why when it is stuck."""
    reason = {"held": task.held_reason, "failed": task.last_error, "skipped": task.last_error,
              "retrying": task.last_error, "planned": task.deferred_reason or task.last_error}
    return {"id": task.id, "tier": task.tier, "title": task.title, "status": str(task.status),
            "attempts": task.attempts, "cost_usd": round(task.cost_usd, 6),
            "pr": task.pr_number, "reason": reason.get(str(task.status)) or ""}


def task_timeline(ledger: Ledger, paths: RepoPaths, task: Task, *,
                  tail: int = 20) -> dict[str, Any]:
    events = ledger.events(task_id=task.id)
    attempts: list[dict[str, Any]] = []
    before: list[dict[str, Any]] = []  # what happened before the first claim (ingest, holds)
    current: dict[str, Any] | None = None
    for event in events:
        if event.type == ev.TASK_CLAIMED:
            current = _new_attempt(int(event.payload.get("attempt") or len(attempts) + 1),
                                   event)
            attempts.append(current)
        if current is None:
            before.append(brief_event(event))
            continue
        _apply(current, event)
    row = task_row(task)
    timeline: dict[str, Any] = {
        "task": {**row, "subtitle": task.subtitle, "last_error": task.last_error,
                 "held_reason": task.held_reason, "branch": task.branch,
                 "worktree": task.worktree, "agent": task.agent, "model": task.model},
        "before_dispatch": before,
        "attempts": attempts,
        "transcript": None,
    }
    if attempts:
        last = attempts[-1]
        path = Path(last["transcript"] or transcript_path(paths, task.id, last["attempt"]))
        timeline["transcript"] = {"attempt": last["attempt"], "path": str(path),
                                  "exists": path.is_file(),
                                  "tail": transcript_tail(path, tail)}
    return timeline


def _new_attempt(number: int, claimed: Event) -> dict[str, Any]:
    # The routing.yaml rule that chose the agent and model, and any fallback it took.
    route: dict[str, Any] = {"rule": claimed.payload.get("route"),
                             "agent": claimed.payload.get("agent"),
                             "model": claimed.payload.get("model"), "fallbacks": []}
    return {"attempt": number, "claimed_at": claimed.ts, "route": route, "agent": None,
            "model": None,
            "worktree": None, "branch": None, "outcome": "running", "classification": None,
            "reason": "", "cost_usd": 0.0, "cost_source": None, "turns": None,
            "duration_s": None, "pr": None, "critic": [], "transcript": None, "events": []}


def _apply(attempt: dict[str, Any], event: Event) -> None:
    payload = event.payload
    attempt["cost_usd"] = round(attempt["cost_usd"] + event.cost_usd, 6)
    attempt["events"].append(brief_event(event))
    if event.type in (ev.WORKTREE_CREATED, ev.WORKTREE_REUSED):
        attempt["worktree"], attempt["branch"] = payload.get("path"), payload.get("branch")
    elif event.type == ev.DISPATCH_RESULT:
        attempt.update(
            classification=payload.get("classification"), reason=payload.get("reason") or "",
            cost_source=payload.get("cost_source"), turns=payload.get("turns"),
            duration_s=payload.get("duration_s"), agent=payload.get("agent"),
            model=payload.get("model"), transcript=payload.get("transcript"))
        attempt["outcome"] = "agent finished" if payload.get("classification") == "SUCCESS" \
            else "agent failed"
    elif event.type == ev.CRITIC_VERDICT:
        attempt["critic"].append({"critic": payload.get("critic"),
                                  "verdict": payload.get("verdict"),
                                  "reasons": list(payload.get("reasons") or []),
                                  "cost_usd": event.cost_usd})
    elif event.type == ev.ROUTE_FALLBACK:
        attempt["route"]["fallbacks"].append({
            "from": payload.get("from"), "to": payload.get("to"),
            "model": payload.get("model"), "reason": payload.get("reason")})
    if event.type == ev.PR_OPENED:
        attempt["pr"] = payload.get("pr")
    if event.type in _OUTCOMES:
        attempt["outcome"] = _OUTCOMES[event.type]
        why = payload.get("reason") or payload.get("error")
        if why and event.type != ev.PR_OPENED:
            attempt["reason"] = str(why)


def brief_event(event: Event) -> dict[str, Any]:
    """An event in a line: enough to read the story, the ledger keeps the rest."""
    payload = event.payload
    detail = next((str(payload[key]) for key in DETAIL_KEYS
                   if payload.get(key) not in (None, "")), "")
    return {"id": event.id, "ts": event.ts, "type": event.type, "task": event.task_id,
            "cost_usd": event.cost_usd, "detail": detail[:200]}


# The payload keys that say most about an event, in order; a payload a reader could not parse
# shows what it holds.
DETAIL_KEYS = ("reason", "error", "verdict", "to", "pr", "path", "message", "title",
               "unreadable_payload", "oversized_payload")
