"""What every command shares: the --config path, the config once loaded, JSON output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from oxi_core.config import OxiConfig


class CliState:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: OxiConfig | None = None

    def config(self, *, secrets: bool = True) -> OxiConfig:
        """The loaded config. ``secrets=False``: for commands that only read the ledger or flip
        the killswitch, which must work when an agent's key is not in the environment."""
        if self._config is None:
            from oxi_core import log
            from oxi_core.config import load_config

            log.configure(level=os.environ.get("OXI_LOG_LEVEL", "info"))
            self._config = load_config(self.config_path, secrets=secrets)
        if secrets:
            self._config.require_secrets()
        return self._config


pass_state = click.make_pass_decorator(CliState)


def emit_json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
