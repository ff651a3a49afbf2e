"""oxi's built-in plugins, registered by where they live: each module is imported only when
oxi.toml uses it (see oxi_core/registry.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl

Register = Callable[[str, type[Any] | str], None]


@hookimpl
def register_notifiers(register: Register) -> None:
    register("log", "oxi_core.builtins.notifiers:LogNotifier")
    register("webhook", "oxi_core.builtins.notifiers:WebhookNotifier")


@hookimpl
def register_agents(register: Register) -> None:
    register("exec", "oxi_core.builtins.exec_agent:ExecAgent")


@hookimpl
def register_judges(register: Register) -> None:
    register("command", "oxi_core.builtins.command_critic:CommandCritic")
    register("llm", "oxi_core.builtins.llm_critic:LLMCritic")


@hookimpl
def register_gates(register: Register) -> None:
    register("budget", "oxi_core.builtins.gates:BudgetGate")
    register("file_overlap", "oxi_core.builtins.gates:FileOverlapGate")


@hookimpl
def register_forges(register: Register) -> None:
    register("local", "oxi_core.builtins.local_forge:LocalForge")


@hookimpl
def register_inference_targets(register: Register) -> None:
    register("litellm", "oxi_core.inference.litellm:LiteLLMTarget")
