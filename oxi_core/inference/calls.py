"""``complete_for_role``: the one path every non-agentic model call takes.

Route the role (routing.yaml), check the money (the daily budget and the role's own cap),
call the first configured target of the chain, fall back along it when a provider fails for
a reason of its own, and cost every call in the ledger under its role with the figure's
provenance (an ``inference_call`` event; refusals and failures are events too). Callers
degrade to their no-LLM behaviour on :class:`InferenceError`.

    from oxi_core.inference.calls import complete_for_role_sync
    result = complete_for_role_sync(config, ledger, "auto-improve-judge", messages,
                                    max_tokens=300)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from oxi_core.inference.errors import FailureKind, InferenceError
from oxi_core.inference.routing import ModelRef, Routing, load_routing
from oxi_core.ledger import events as ev
from oxi_core.models import InferenceResult, isoformat

if TYPE_CHECKING:
    from oxi_core.config import OxiConfig
    from oxi_core.ledger import Ledger

Messages = Sequence[Mapping[str, Any]]
ROLE_SPEND_SQL = (
    "SELECT coalesce(sum(cost_usd), 0) FROM events WHERE type = ? AND ts >= ? "
    "AND json_extract(payload, '$.role') = ?"
)


def day_start(now: datetime) -> str:
    return isoformat(now.replace(hour=0, minute=0, second=0, microsecond=0))


def role_spend_today(ledger: Ledger, role: str) -> float:
    rows = ledger.query(ROLE_SPEND_SQL, (ev.INFERENCE_CALL, day_start(ledger.now()), role))
    return float(rows[0][0])


def check_budget(config: OxiConfig, ledger: Ledger, role: str) -> None:
    """Raise (and record) a refusal when today's budget or the role's own cap is spent."""
    policy = config.policy
    spent = ledger.spend_since(day_start(ledger.now()))
    reason = None
    if spent >= policy.budget_per_day_usd:
        reason = (f"the daily budget of ${policy.budget_per_day_usd:.2f} is spent "
                  f"(${spent:.4f})")
    cap = policy.role_caps_usd.get(role)
    if reason is None and cap is not None:
        role_spent = role_spend_today(ledger, role)
        if role_spent >= cap:
            reason = f"role {role}'s daily cap of ${cap:.2f} is spent (${role_spent:.4f})"
    if reason is not None:
        ledger.append(ev.INFERENCE_REFUSED, payload={"role": role, "reason": reason})
        raise InferenceError(f"{role}: no call made: {reason}", kind=FailureKind.BUDGET,
                             hint="raise [engine] budget_per_day_usd or role_caps_usd")


def _record_call(ledger: Ledger, role: str, ref: ModelRef, model: str, result: InferenceResult,
                 task_id: str | None, rule: str, fallback_from: list[str]) -> None:
    payload: dict[str, Any] = {
        "role": role, "target": ref.adapter_name, "model": model,
        "answered_model": result.model, "cost_source": result.cost_source,
        "tokens_in": result.tokens_in, "tokens_out": result.tokens_out,
        "latency_ms": result.latency_ms, "rule": rule,
    }
    if result.cost_note:
        payload["cost_note"] = result.cost_note
    if fallback_from:
        payload["fallback_from"] = fallback_from
    if task_id is not None and ledger.task(task_id) is not None:
        # Through the task, so the call's cost counts in the task's own.
        ledger.update_task(task_id, event_type=ev.INFERENCE_CALL, payload=payload,
                           cost_usd=result.cost_usd)
    else:
        ledger.append(ev.INFERENCE_CALL, task_id=task_id, payload=payload,
                      cost_usd=result.cost_usd)


async def complete_for_role(
    config: OxiConfig, ledger: Ledger, role: str, messages: Messages, *,
    task: Any = None, task_id: str | None = None, max_tokens: int = 1024,
    routing: Routing | None = None, **options: Any,
) -> InferenceResult:
    """Answer ``messages`` with the model routed for ``role`` (and ``task``), costed in the
    ledger. Raises InferenceError (recorded) when no target of the chain answers."""
    routing = routing or load_routing(config.config_dir)
    choice = routing.route_for(role, task)
    targets: Mapping[str, Any] = config.instances.get("inference", {})
    task_id = task_id or getattr(task, "id", None)
    check_budget(config, ledger, role)
    chain = [ref for ref in choice.chain if ref.adapter_name in targets]
    if not chain:
        wanted = ", ".join(ref.label() for ref in choice.chain)
        error = InferenceError(
            f"{role}: routing.yaml rule {choice.rule!r} names {wanted}, and oxi.toml "
            f"configures no such inference target (configured: "
            f"{', '.join(sorted(targets)) or 'none'})", kind=FailureKind.NOT_CONFIGURED,
            hint='add [inference.gateway] type = "litellm" with its base_url, or route the '
                 "role elsewhere in routing.yaml")
        ledger.append(ev.INFERENCE_FAILED, task_id=task_id,
                      payload={"role": role, "rule": choice.rule, **error.as_payload()})
        raise error
    failed: list[str] = []
    last: InferenceError | None = None
    for position, ref in enumerate(chain):
        model = ref.model_id or choice.model_id or ""
        try:
            result: InferenceResult = await targets[ref.adapter_name].complete(
                messages, model, max_tokens, role=role, **options)
        except InferenceError as error:
            last = error
            ledger.append(ev.INFERENCE_FAILED, task_id=task_id, payload={
                "role": role, "target": ref.adapter_name, "model": model, "rule": choice.rule,
                **error.as_payload()})
            if not error.provider_failure or position == len(chain) - 1:
                raise
            following = chain[position + 1]
            ledger.append(ev.ROUTE_FALLBACK, task_id=task_id, payload={
                "role": role, "from": f"{ref.adapter_name}:{model}",
                "to": following.label() if following.model_id else
                f"{following.adapter_name}:{choice.model_id}",
                "reason": str(error.kind), "error": error.message})
            failed.append(f"{ref.adapter_name}:{model}")
            continue
        _record_call(ledger, role, ref, model, result, task_id, choice.rule, failed)
        return result
    assert last is not None  # the loop returns or raises
    raise last


def complete_for_role_sync(config: OxiConfig, ledger: Ledger, role: str, messages: Messages,
                           **kwargs: Any) -> InferenceResult:
    """``complete_for_role`` from synchronous code (a judge, the reaper). Inside a running
    event loop the call runs on a thread of its own, with its own loop."""

    async def call() -> InferenceResult:
        try:
            return await complete_for_role(config, ledger, role, messages, **kwargs)
        finally:
            # The connection pools belong to this short-lived loop: close them with it.
            for target in config.instances.get("inference", {}).values():
                aclose = getattr(target, "aclose", None)
                if callable(aclose):
                    await aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                               thread_name_prefix="oxi-inference") as pool:
        return pool.submit(asyncio.run, call()).result()
