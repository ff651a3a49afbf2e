"""Shadow runs (T2-35): every worker dispatch also runs a shadow agent, observed only.

With ``OXI_AGENTIC_SHADOW=codex`` (or ``[roles] shadow = "codex"`` in oxi.toml), the shadow
agent gets the same prompt in a sibling worktree (detached, never pushed, always removed). The
primary run is untouched: same request, same result, same heartbeat. Both results are recorded
as a pair of ``agentic_shadow_observed`` events sharing a ``pair_id``, with ``shape_match`` and
``cost_delta_usd``; the shadow's spend is on its event, so it counts toward the daily budget.

Two runs have the same *shape* when they end in the same classification and change the same
set of files.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core import git
from oxi_core.agentic.types import DispatchRequest, DispatchResult
from oxi_core.errors import WorktreeError
from oxi_core.ledger import events as ev
from oxi_core.models import Classification, FailureKind
from oxi_core.repolock import repo_lock

if TYPE_CHECKING:
    from oxi_core.engine.engine import Engine
    from oxi_core.ledger import Ledger

SHADOW_FOLDER = "shadow"
REPORT_PAIRS = 50


def worktree_changes(path: Path, base_ref: str) -> list[str]:
    """Files an agent changed in ``path``: committed since ``base_ref`` and not yet committed."""
    committed = set(git.changed_files(base_ref, "HEAD", path))
    status = git.out(["status", "--porcelain", "--untracked-files=all", "-z"], path)
    pending = {entry[3:] for entry in status.split("\0") if len(entry) > 3}
    return sorted(committed | pending)


def shape(result: DispatchResult, files: list[str]) -> tuple[str, tuple[str, ...]]:
    return (str(result.classification), tuple(files))


async def invoke_with_shadow(engine: Engine, request: DispatchRequest, *,
                             worker: Any = None, worker_name: str | None = None
                             ) -> DispatchResult:
    """Run the worker (the routed agent, else [roles] worker); with a shadow configured, run
    it beside and record the pair."""
    if worker is None:
        worker, worker_name = engine.config.worker, engine.config.roles.worker
    assert worker is not None
    shadow = engine.config.shadow
    if shadow is None:
        result: DispatchResult = await worker.invoke(request)
        return result
    policy = engine.config.policy
    base_ref = f"{policy.remote}/{policy.base_branch}"
    paths = engine.config.paths
    shadow_root = paths.worktrees_dir / SHADOW_FOLDER
    if shadow_root.is_symlink():
        raise WorktreeError(f"refusing {shadow_root}: it is a symlink")
    shadow_path = shadow_root / f"{request.task_id}-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(_add_detached, paths.repo_root, paths.state_dir, shadow_path,
                            base_ref)
    # The shadow runs its own configured model, never the one routed to the primary agent.
    shadow_request = attrs.evolve(request, worktree=shadow_path, on_event=None, on_spawn=None,
                                  model=None)
    try:
        primary_job: asyncio.Future[DispatchResult] = asyncio.ensure_future(
            worker.invoke(request))
        shadow_job = asyncio.ensure_future(_run_shadow(shadow, shadow_request))
        await asyncio.wait({primary_job, shadow_job})
        primary_result = primary_job.result()
        shadow_outcome = shadow_job.result()
        primary_files = await asyncio.to_thread(worktree_changes, request.worktree, base_ref)
        shadow_files = await asyncio.to_thread(worktree_changes, shadow_path, base_ref)
    finally:
        await asyncio.to_thread(_remove, paths.repo_root, paths.state_dir, shadow_path)
    record_pair(engine.ledger, request.task_id, worker_name or "",
                engine.config.roles.shadow or "", primary_result, primary_files, shadow_outcome,
                shadow_files)
    return primary_result


async def _run_shadow(shadow: Any, request: DispatchRequest) -> DispatchResult:
    try:
        result: DispatchResult = await shadow.invoke(request)
    except Exception as error:  # the shadow must never disturb the primary run
        return DispatchResult(Classification.FAILED, f"shadow raised {type(error).__name__}: "
                              f"{error}", failure_kind=FailureKind.AGENT_ERROR)
    return result


def _add_detached(repo: Path, state_dir: Path, path: Path, base_ref: str) -> None:
    with repo_lock(state_dir).hold():
        path.parent.mkdir(parents=True, exist_ok=True)
        git.git(["worktree", "add", "--quiet", "--detach", str(path), base_ref], repo)


def _remove(repo: Path, state_dir: Path, path: Path) -> None:
    with repo_lock(state_dir).hold():
        git.git(["worktree", "remove", "--force", str(path)], repo, check=False)
        if path.exists() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        git.git(["worktree", "prune"], repo)


def record_pair(
    ledger: Ledger, task_id: str, primary_agent: str, shadow_agent: str,
    primary: DispatchResult, primary_files: list[str], shadow: DispatchResult,
    shadow_files: list[str],
) -> str:
    pair_id = uuid.uuid4().hex
    match = shape(primary, primary_files) == shape(shadow, shadow_files)
    delta = round(shadow.cost_usd - primary.cost_usd, 6)
    common = {"pair_id": pair_id, "shape_match": match, "cost_delta_usd": delta}
    with ledger.transaction():
        # The primary's cost is already on its dispatch_result; only the shadow's is new spend.
        ledger.append(ev.AGENTIC_SHADOW_OBSERVED, task_id=task_id,
                      session_id=primary.session_id, payload={
                          **common, "role": "primary", "agent": primary_agent,
                          "files": primary_files, "result": primary.result_event()})
        ledger.append(ev.AGENTIC_SHADOW_OBSERVED, task_id=task_id, cost_usd=shadow.cost_usd,
                      session_id=shadow.session_id, payload={
                          **common, "role": "shadow", "agent": shadow_agent,
                          "files": shadow_files, "result": shadow.result_event()})
    return pair_id


def shadow_report(ledger: Ledger, *, pairs: int = REPORT_PAIRS) -> dict[str, Any]:
    """The last ``pairs`` shadow pairs, the agreement rate and the cost delta."""
    events = ledger.events(types=[ev.AGENTIC_SHADOW_OBSERVED], newest_first=True,
                           limit=pairs * 2)
    by_pair: dict[str, dict[str, Any]] = {}
    unreadable = 0
    for event in events:
        side = _side(event.payload)
        if side is None:
            unreadable += 1  # damaged or written by hand: counted, never fatal
            continue
        pair_id, role, match, delta, seen = side
        pair = by_pair.setdefault(pair_id, {
            "pair_id": pair_id, "task": event.task_id, "ts": event.ts,
            "shape_match": match, "cost_delta_usd": delta})
        pair[role] = seen
    complete = [p for p in by_pair.values() if "primary" in p and "shadow" in p][:pairs]
    agreed = sum(1 for p in complete if p["shape_match"])
    return {
        "pairs": complete,
        "count": len(complete),
        "unreadable_events": unreadable,
        "agreement_rate": round(agreed / len(complete), 4) if complete else None,
        "cost_delta_usd": round(sum(p["cost_delta_usd"] for p in complete), 6),
        "primary_cost_usd": round(sum(p["primary"]["cost_usd"] for p in complete), 6),
        "shadow_cost_usd": round(sum(p["shadow"]["cost_usd"] for p in complete), 6),
    }


def _side(payload: Mapping[str, Any]) -> tuple[str, str, bool, float, dict[str, Any]] | None:
    """One side of a pair as the report reads it, or None when the payload is not one."""
    result = payload.get("result")
    try:
        pair_id, role = str(payload["pair_id"]), str(payload["role"])
        match, delta = payload["shape_match"], float(payload["cost_delta_usd"])
        seen = {"agent": payload.get("agent"),
                "classification": result.get("classification") if isinstance(result, dict)
                else None,
                "cost_usd": float(result.get("cost_usd") or 0.0) if isinstance(result, dict)
                else 0.0,
                "files": list(payload.get("files") or [])}
    except (KeyError, TypeError, ValueError):
        return None
    if role not in ("primary", "shadow") or not isinstance(match, bool):
        return None
    return pair_id, role, match, delta, seen
