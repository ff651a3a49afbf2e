"""oxi: run coding agents on a git repository unattended.

The public API for plugin authors lives here: ``hookimpl``, the protocols registered classes
implement, the value types they exchange, and the errors. Names are resolved on first use, so
``import oxi_core`` stays cheap for the command line.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

_EXPORTS = {
    "hookimpl": "oxi_core.hookspecs",
    "AgenticAdapter": "oxi_core.protocols",
    "InferenceTarget": "oxi_core.protocols",
    "Source": "oxi_core.protocols",
    "Gate": "oxi_core.protocols",
    "Judge": "oxi_core.protocols",
    "Notifier": "oxi_core.protocols",
    "Forge": "oxi_core.protocols",
    "RepositoryAdapter": "oxi_core.protocols",
    "PluginContext": "oxi_core.protocols",
    "CanonicalEvent": "oxi_core.agentic.types",
    "CanonicalKind": "oxi_core.agentic.types",
    "CostSource": "oxi_core.agentic.types",
    "DispatchRequest": "oxi_core.agentic.types",
    "DispatchResult": "oxi_core.agentic.types",
    "Usage": "oxi_core.agentic.types",
    "Candidate": "oxi_core.models",
    "Classification": "oxi_core.models",
    "Event": "oxi_core.models",
    "GateAction": "oxi_core.models",
    "GateDecision": "oxi_core.models",
    "InferenceResult": "oxi_core.models",
    "PullRequest": "oxi_core.models",
    "PullRequestState": "oxi_core.models",
    "PullRequestSubject": "oxi_core.models",
    "Verdict": "oxi_core.models",
    "VerdictKind": "oxi_core.models",
    "Policy": "oxi_core.policy",
    "RepoPaths": "oxi_core.policy",
    "Task": "oxi_core.tasks",
    "TaskStatus": "oxi_core.tasks",
    "OxiError": "oxi_core.errors",
    "ConfigError": "oxi_core.errors",
    "PluginError": "oxi_core.errors",
    "SourceError": "oxi_core.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'oxi_core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from oxi_core.agentic.types import (
        CanonicalEvent,
        CanonicalKind,
        CostSource,
        DispatchRequest,
        DispatchResult,
        Usage,
    )
    from oxi_core.errors import ConfigError, OxiError, PluginError, SourceError
    from oxi_core.hookspecs import hookimpl
    from oxi_core.models import (
        Candidate,
        Classification,
        Event,
        GateAction,
        GateDecision,
        InferenceResult,
        PullRequest,
        PullRequestState,
        PullRequestSubject,
        Verdict,
        VerdictKind,
    )
    from oxi_core.policy import Policy, RepoPaths
    from oxi_core.protocols import (
        AgenticAdapter,
        Forge,
        Gate,
        InferenceTarget,
        Judge,
        Notifier,
        PluginContext,
        RepositoryAdapter,
        Source,
    )
    from oxi_core.tasks import Task, TaskStatus
