"""oxi's built-in plugins. Implementations are imported inside each hook to keep start-up fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oxi_core.hookspecs import hookimpl

Register = Callable[[str, type[Any]], None]


@hookimpl
def register_notifiers(register: Register) -> None:
    from oxi_core.builtins.notifiers import LogNotifier, WebhookNotifier

    register("log", LogNotifier)
    register("webhook", WebhookNotifier)


@hookimpl
def register_agents(register: Register) -> None:
    from oxi_core.builtins.exec_agent import ExecAgent

    register("exec", ExecAgent)


@hookimpl
def register_judges(register: Register) -> None:
    from oxi_core.builtins.command_critic import CommandCritic
    from oxi_core.builtins.llm_critic import LLMCritic

    register("command", CommandCritic)
    register("llm", LLMCritic)


@hookimpl
def register_gates(register: Register) -> None:
    from oxi_core.builtins.gates import BudgetGate, FileOverlapGate

    register("budget", BudgetGate)
    register("file_overlap", FileOverlapGate)


@hookimpl
def register_forges(register: Register) -> None:
    from oxi_core.builtins.local_forge import LocalForge

    register("local", LocalForge)


@hookimpl
def register_inference_targets(register: Register) -> None:
    from oxi_core.inference.litellm import LiteLLMTarget

    register("litellm", LiteLLMTarget)
