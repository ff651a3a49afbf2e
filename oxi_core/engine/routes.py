"""Which agent (and model) runs a task: routing.yaml's `worker` rules resolved against the
agents oxi.toml configures (T2-40), and when a failed run may fall back to the next one.

An adapter the routing names but oxi.toml does not configure is skipped; when none of the
chain is configured the task goes to the agent ``[roles] worker`` names, so the shipped
defaults change nothing for a repository with one agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from oxi_core.inference.routing import (
    DEFAULT_AGENT,
    ModelRef,
    RoleNotConfiguredError,
    Routing,
    load_routing,
)
from oxi_core.models import PROVIDER_FAILURES, Classification

if TYPE_CHECKING:
    from oxi_core.agentic.types import DispatchResult
    from oxi_core.config import OxiConfig


@attrs.frozen
class WorkerRoute:
    agent: str
    model: str | None  # None: the agent's own configured model
    fallbacks: tuple[ModelRef, ...] = ()
    rule: str = ""
    reason: str = ""

    @property
    def chain(self) -> tuple[ModelRef, ...]:
        return (ModelRef(self.agent, self.model), *self.fallbacks)


def route_worker(config: OxiConfig, task: Any, routing: Routing | None = None) -> WorkerRoute:
    """The agent that runs ``task`` first, and those to fall back to."""
    default = config.roles.worker
    if config.worker_override is not None:
        return WorkerRoute(config.worker_override, None, (), "--worker",
                           "chosen on the command line for this run")
    agents = config.instances["agents"]
    try:
        choice = (routing or load_routing(config.config_dir)).route_for("worker", task)
    except RoleNotConfiguredError:
        assert default is not None
        return WorkerRoute(default, None, (), "roles.worker", "no worker rule matched")
    chain: list[ModelRef] = []
    skipped: list[str] = []
    for ref in choice.chain:
        resolved = ModelRef(default, ref.model_id) if ref.adapter_name == DEFAULT_AGENT and (
            default is not None) else ref
        if resolved.adapter_name not in agents:
            skipped.append(ref.adapter_name)
        elif resolved not in chain:
            chain.append(resolved)
    not_configured = (f"; not configured in oxi.toml: {', '.join(skipped)}" if skipped else "")
    if not chain:
        assert default is not None
        return WorkerRoute(default, None, (), "roles.worker",
                           f"rule {choice.rule!r} matched{not_configured}")
    first, *rest = chain
    return WorkerRoute(first.adapter_name, first.model_id, tuple(rest), choice.rule,
                       f"{choice.why or 'rule ' + repr(choice.rule)}{not_configured}")


def agent_model(config: OxiConfig, agent: str, model: str | None) -> str | None:
    """The model ``agent`` runs: the routed one, else the agent's own."""
    if model:
        return model
    instance = config.instances["agents"].get(agent)
    model_id = getattr(instance, "model_id", None)
    return model_id() if callable(model_id) else None


def provider_failure(result: DispatchResult) -> str | None:
    """Why a run failed for a reason of its provider, so that another agent may succeed (5xx,
    overload, rejected credentials, an unreachable or silent API): the failure kind its
    adapter classified, never the wording of its reason."""
    if result.classification is Classification.SUCCESS or result.failure_kind is None:
        return None
    return str(result.failure_kind) if result.failure_kind in PROVIDER_FAILURES else None
