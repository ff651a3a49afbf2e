"""How the `oxi` command line reports errors, its version, and its `v3` alias group."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner

from oxi_core import __version__
from oxi_core.cli import main
from oxi_core.errors import ConfigError

OXI = Path(sys.executable).with_name("oxi")  # the console script installed in the venv


def run_oxi(*args: str, raise_errors: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"OXI_RAISE_ERRORS", "OXI_CONFIG"}}
    env.pop("PYTEST_CURRENT_TEST", None)  # the child is not under pytest
    if raise_errors is not None:
        env["OXI_RAISE_ERRORS"] = raise_errors
    return subprocess.run(
        [str(OXI), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def run_main_in_cli_runner(argv: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
    """Run ``main()`` itself inside click's CliRunner isolation (captured streams, env)."""
    runner = CliRunner()
    with runner.isolation(env=env) as (stdout, stderr, _output):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = stdout.getvalue().decode(), stderr.getvalue().decode()
    code = exited.value.code
    assert isinstance(code, int)
    return code, out, err


def help_commands(text: str) -> list[str]:
    section = text.split("Commands:", 1)[1].split("\n\n", 1)[0]  # the epilog follows
    return [m.group(1) for m in re.finditer(r"^  (\S+)", section, flags=re.MULTILINE)]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # Commands configure structlog on the runner's captured stderr; do not leak it onwards.
    yield
    structlog.reset_defaults()


@pytest.fixture
def missing_config(tmp_path: Path) -> Path:
    return tmp_path / "nowhere" / "oxi.toml"


def test_an_oxi_error_in_the_real_console_script_prints_one_line_and_exits_non_zero(
    missing_config: Path,
) -> None:
    result = run_oxi("--config", str(missing_config), "config", "check", raise_errors="0")

    assert result.returncode == ConfigError.exit_code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("oxi: error: ")
    assert str(missing_config) in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_oxi_error_through_main_in_cli_runner_prints_one_line(missing_config: Path) -> None:
    code, out, err = run_main_in_cli_runner(
        ["--config", str(missing_config), "config", "check"], env={"OXI_RAISE_ERRORS": "0"}
    )

    assert code == ConfigError.exit_code
    assert err.splitlines() == [err.rstrip("\n")]
    assert err.startswith("oxi: error: ")
    assert str(missing_config) in err
    assert out == ""


def test_an_oxi_error_is_re_raised_when_oxi_raise_errors_is_1(missing_config: Path) -> None:
    with CliRunner().isolation(env={"OXI_RAISE_ERRORS": "1"}), pytest.raises(ConfigError) as raised:
        main(["--config", str(missing_config), "config", "check"])
    assert str(missing_config) in str(raised.value)

    result = run_oxi("--config", str(missing_config), "config", "check", raise_errors="1")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "oxi_core.errors.ConfigError" in result.stderr
    assert "oxi: error:" not in result.stderr


def test_an_oxi_error_is_re_raised_under_pytest_unless_told_otherwise(
    missing_config: Path,
) -> None:
    assert "PYTEST_CURRENT_TEST" in os.environ
    with CliRunner().isolation(env={"OXI_RAISE_ERRORS": None}), pytest.raises(ConfigError):
        main(["--config", str(missing_config), "config", "check"])


def test_version_prints_the_installed_version() -> None:
    result = run_oxi("--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"oxi, version {__version__}"
    assert __version__ == version("oxi-engine")


def test_v3_help_lists_the_same_commands_as_the_top_level_help() -> None:
    top = run_oxi("--help")
    alias = run_oxi("v3", "--help")

    assert top.returncode == alias.returncode == 0
    top_commands = help_commands(top.stdout)
    assert "v3" in top_commands
    assert {"config", "init", "plugins"} <= set(top_commands)
    assert help_commands(alias.stdout) == [name for name in top_commands if name != "v3"]
