"""Built-in dispatch gates: the budget (daily and per-task caps) and the file-overlap gate."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    # Loading oxi.toml builds the gates (every `oxi tick`); only a dispatch asks them.
    from oxi_core.engine.state import EngineState
    from oxi_core.models import GateDecision
    from oxi_core.tasks import Task


@attrs.define
class BudgetGate:
    """Holds a task whose estimate is over its per-task cap; defers when the day's cap is near.

    Spend already recorded today plus the estimates reserved by in-flight tasks plus this
    task's estimate must stay within the daily cap, so the cap is exceeded by at most what
    in-flight tasks overrun their own estimates (bounded by their per-task caps). The day's
    budget is reached (``daily_budget_reached``: no more dispatches today) once today's spend
    is at the cap, or once nothing is in flight and this task's estimate no longer fits.
    """

    def check(self, task: Task, state: EngineState) -> GateDecision:
        from oxi_core.models import GateDecision

        estimate = state.estimate(task)
        cap = state.policy.task_cap_for(task.model or state.worker_model)
        if estimate > cap:
            return GateDecision.hold(
                f"estimated ${estimate:.2f} is over the per-task cap of ${cap:.2f}",
                estimate_usd=estimate, cap_usd=cap,
            )
        daily = state.daily_budget_usd or state.policy.budget_per_day_usd
        if state.spent_today_usd >= daily:
            return GateDecision.defer(
                f"the daily budget of ${daily:.2f} is spent", daily_budget_reached=True,
                spent_usd=state.spent_today_usd, budget_usd=daily,
            )
        committed = state.spent_today_usd + state.reserved_usd
        if committed + estimate > daily:
            if not state.in_flight:
                # Nothing in flight can come in under its estimate and leave room: what is
                # left of today's budget cannot pay for this task, so the day's budget is spent.
                return GateDecision.defer(
                    f"${state.spent_today_usd:.2f} spent today; ${estimate:.2f} more would pass "
                    f"the daily budget of ${daily:.2f}", daily_budget_reached=True,
                    spent_usd=state.spent_today_usd, estimate_usd=estimate, budget_usd=daily,
                )
            return GateDecision.defer(
                f"${committed:.2f} spent or reserved today; ${estimate:.2f} more would pass the "
                f"daily budget of ${daily:.2f}",
                spent_usd=state.spent_today_usd, reserved_usd=state.reserved_usd,
                estimate_usd=estimate, budget_usd=daily,
            )
        return GateDecision.allow()


def paths_overlap(left: Iterable[str], right: Iterable[str]) -> list[str]:
    """Paths in ``left`` equal to, inside, or containing a path in ``right``."""
    right_set = [r.rstrip("/") for r in right]
    found = []
    for path in left:
        clean = path.rstrip("/")
        for other in right_set:
            if clean == other or clean.startswith(other + "/") or other.startswith(clean + "/"):
                found.append(clean)
                break
    return sorted(set(found))


@attrs.define
class FileOverlapGate:
    """Defers a task whose expected files overlap those of another task from its claim until
    its pull request merges or closes (the ledger's dispatched and in-review tasks), or those
    of any open PR the forge lists (a person's, too)."""

    def check(self, task: Task, state: EngineState) -> GateDecision:
        from oxi_core.models import GateDecision

        scope = task.files_touched
        if not scope:
            return GateDecision.allow()
        unsettled = (*state.in_flight, *state.in_review)
        tasks = [other.id for other in unsettled
                 if other.id != task.id and paths_overlap(scope, other.files_touched)]
        prs = [pr.number for pr in state.open_prs
               if pr.task_id != task.id and paths_overlap(scope, pr.files)]
        if not prs and not tasks:
            return GateDecision.allow()
        files = sorted({f for pr in state.open_prs if pr.number in prs
                        for f in paths_overlap(scope, pr.files)}
                       | {f for other in unsettled if other.id in tasks
                          for f in paths_overlap(scope, other.files_touched)})
        parts = []
        if prs:
            parts.append("open PRs " + ", ".join(f"#{n}" for n in prs))
        if tasks:
            parts.append("unmerged tasks " + ", ".join(tasks))
        return GateDecision.defer(
            f"files {', '.join(files)} overlap {' and '.join(parts)}",
            overlapping_prs=prs, overlapping_tasks=tasks, files=files,
        )
