"""Where the pinned agent CLIs are, and the environment that runs them offline.

``scripts/install-agent-clis`` installs the pinned versions into
``<repo>/.agent-clis/<name>-<version>/`` (git-ignored). :func:`claude_binary` and
:func:`codex_binary` find them there, or wherever ``OXI_CLAUDE_BIN`` / ``OXI_CODEX_BIN`` point.

:func:`claude_env` and :func:`codex_env` build the environment that makes a CLI talk only to a
scripted model server on 127.0.0.1 (see :mod:`oxi_core.testing.anthropic_server` and
:mod:`oxi_core.testing.openai_server`), quietly and without retries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "AGENT_CLIS_DIR",
    "CLAUDE_CODE_PACKAGE",
    "CLAUDE_CODE_VERSION",
    "CODEX_API_KEY_VAR",
    "CODEX_PACKAGE",
    "CODEX_VERSION",
    "claude_binary",
    "claude_env",
    "codex_binary",
    "codex_env",
]

CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
CLAUDE_CODE_VERSION = "2.1.197"
CODEX_PACKAGE = "@openai/codex"
CODEX_VERSION = "0.169.0"

AGENT_CLIS_DIR = Path(__file__).resolve().parents[2] / ".agent-clis"
"""``<repo root>/.agent-clis``, where ``scripts/install-agent-clis`` puts the CLIs (meaningful
for a source checkout; an installed oxi relies on the environment variables)."""

CODEX_API_KEY_VAR = "OXI_SCRIPTED_API_KEY"
"""The variable :func:`codex_env` names as the provider's ``env_key``."""

# Variables passed through to a CLI from the calling environment, when set.
_PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT")


def _executable(path: Path) -> Path | None:
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _find(variable: str, installed: Path) -> Path | None:
    override = os.environ.get(variable)
    if override:
        return _executable(Path(override))
    return _executable(installed)


def claude_binary() -> Path | None:
    """The ``claude`` executable: ``$OXI_CLAUDE_BIN``, else the pinned install under
    :data:`AGENT_CLIS_DIR`; ``None`` when it is not there."""
    installed = AGENT_CLIS_DIR / f"claude-code-{CLAUDE_CODE_VERSION}" / "node_modules/.bin/claude"
    return _find("OXI_CLAUDE_BIN", installed)


def codex_binary() -> Path | None:
    """The ``codex`` executable: ``$OXI_CODEX_BIN``, else the pinned install under
    :data:`AGENT_CLIS_DIR`; ``None`` when it is not there."""
    installed = AGENT_CLIS_DIR / f"codex-{CODEX_VERSION}" / "node_modules/.bin/codex"
    return _find("OXI_CODEX_BIN", installed)


def _base_env(home: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    env["HOME"] = str(home)
    env.update(extra or {})
    return env


def claude_env(
    base_url: str, home: Path, *, api_key: str = "test", extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for ``claude -p`` against the Anthropic-compatible server at *base_url*.

    *home* becomes ``HOME`` (Claude Code writes ``~/.claude.json`` and its transcripts there:
    use a throwaway directory). Retries, telemetry and non-essential traffic are off. Nothing
    else from the calling environment is passed but ``PATH``, locale and ``TMPDIR``.
    """
    env = {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    env.update(extra or {})
    return _base_env(home, env)


def codex_env(
    config_toml: str,
    codex_home: Path,
    home: Path,
    *,
    api_key: str = "test",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for ``codex exec``: writes *config_toml* (for instance
    :meth:`OpenAIServer.codex_config() <oxi_core.testing.openai_server.OpenAIServer.codex_config>`)
    to ``codex_home/config.toml`` and sets ``CODEX_HOME``, ``HOME`` and the API key variable
    :data:`CODEX_API_KEY_VAR`. Run codex with ``stdin=subprocess.DEVNULL``.
    """
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(config_toml, encoding="utf-8")
    env = {"CODEX_HOME": str(codex_home), CODEX_API_KEY_VAR: api_key}
    env.update(extra or {})
    return _base_env(home, env)
