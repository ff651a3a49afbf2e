"""The public API for plugin authors: every advertised name imports, and lazily."""

from __future__ import annotations

import subprocess
import sys

import oxi_core


def test_every_exported_name_resolves() -> None:
    for name in oxi_core.__all__:
        assert getattr(oxi_core, name) is not None, name


def test_importing_oxi_core_does_not_import_heavy_libraries() -> None:
    code = ("import sys, oxi_core, oxi_core.cli; "
            "print(sorted(m for m in ('attrs', 'cattrs', 'structlog', 'sqlite_utils', 'httpx') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
