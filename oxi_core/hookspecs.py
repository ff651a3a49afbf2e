"""Every hook a plugin can implement. Documented, with examples, in hookspecs.md.

Registration hooks hand the plugin a ``register(name, cls)`` callback; oxi later builds the
registered classes from oxi.toml and calls their plain methods, so pluggy stays off hot paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from oxi_core.protocols import (
        AgenticAdapter,
        Forge,
        Gate,
        InferenceTarget,
        Judge,
        Notifier,
        Source,
    )

hookspec = pluggy.HookspecMarker("oxi")
hookimpl = pluggy.HookimplMarker("oxi")


@hookspec
def register_agents(register: Callable[[str, type[AgenticAdapter] | str], None]) -> None:
    """Register agentic adapters (classes implementing ``oxi_core.AgenticAdapter``)."""


@hookspec
def register_inference_targets(
    register: Callable[[str, type[InferenceTarget] | str], None],
) -> None:
    """Register inference targets (classes implementing ``oxi_core.InferenceTarget``)."""


@hookspec
def register_sources(register: Callable[[str, type[Source] | str], None]) -> None:
    """Register auto-improve sources (classes implementing ``oxi_core.Source``)."""


@hookspec
def register_gates(register: Callable[[str, type[Gate] | str], None]) -> None:
    """Register dispatch gates (classes implementing ``oxi_core.Gate``)."""


@hookspec
def register_judges(register: Callable[[str, type[Judge] | str], None]) -> None:
    """Register judges and critics (classes implementing ``oxi_core.Judge``)."""


@hookspec
def register_notifiers(register: Callable[[str, type[Notifier] | str], None]) -> None:
    """Register notifiers (classes implementing ``oxi_core.Notifier``)."""


@hookspec
def register_forges(register: Callable[[str, type[Forge] | str], None]) -> None:
    """Register code hosts (classes implementing ``oxi_core.Forge``)."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``oxi`` click group (they also appear under ``oxi v3``). oxi's own
    commands are loaded on look-up: reach one with ``cli.get_command(ctx, name)``."""


# The registration hooks, by the kind of thing they register and the oxi.toml table it uses.
KIND_HOOKS: dict[str, str] = {
    "agents": "register_agents",
    "inference": "register_inference_targets",
    "sources": "register_sources",
    "gates": "register_gates",
    "judges": "register_judges",
    "notifiers": "register_notifiers",
    "forges": "register_forges",
}


