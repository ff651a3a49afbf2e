"""Where a repository's ledger and roadmap live, read from oxi.toml's ``[adapter]`` alone.

The killswitch (`oxi pause`, `oxi resume`), `oxi status` and every other command that only
reads or marks the ledger use this instead of ``load_config``: they build no plugin and read no
secret, and they still work when the rest of oxi.toml is broken. A broken file falls back to the
folder holding it, and then only a ledger that already exists there is used: a ledger is never
created anywhere but in a repository root that exists.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from oxi_core.config import (
    default_config_dir,
    errors_at_lines,
    find_config,
    load_adapter,
    make_converter,
    read_toml_text,
)
from oxi_core.errors import ConfigError, LedgerError, OxiError
from oxi_core.ledger import Ledger
from oxi_core.policy import RepoPaths
from oxi_core.status import BaseBranch


@attrs.frozen
class Located:
    config_path: Path | None
    paths: RepoPaths
    # Why oxi.toml could not be read; ``paths`` are then the fallback beside it.
    problem: OxiError | None = None
    remote: str = "origin"
    base_branch: str = "main"

    @property
    def base(self) -> BaseBranch:
        return BaseBranch(self.paths.repo_root, self.remote, self.base_branch)


def locate(explicit: Path | None = None, *, cwd: Path | None = None) -> Located:
    """The paths oxi.toml's adapter names, without plugins (falling back on a broken file)."""
    config_path = find_config(explicit, cwd)
    config_dir = config_path.parent if config_path else default_config_dir(cwd)
    file = str(config_path) if config_path else None
    try:
        text, data = read_toml_text(config_path) if config_path else ("", {})
        with errors_at_lines(text):
            adapter, paths = load_adapter(data, converter=make_converter(config_dir),
                                          file=file, config_dir=config_dir)
    except ConfigError as error:
        if config_path is None:
            raise
        return Located(config_path, RepoPaths.under(config_dir), error)
    policy, engine = adapter.policy(), data.get("engine", {})
    remote, base = engine.get("remote", policy.remote), engine.get("base_branch",
                                                                    policy.base_branch)
    return Located(config_path, paths, None,
                   remote if isinstance(remote, str) else policy.remote,
                   base if isinstance(base, str) else policy.base_branch)


def open_ledger(located: Located) -> Ledger:
    """The ledger, created only where the configuration says the repository is."""
    path = located.paths.ledger
    if located.problem is not None and not path.is_file():
        raise LedgerError(
            f"oxi.toml cannot be read, and there is no ledger at {path} beside it: "
            f"{located.problem}",
            hint="fix oxi.toml (`oxi config check` says where)",
        )
    return Ledger(path)
