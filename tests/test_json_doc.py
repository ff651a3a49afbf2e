"""docs/json.md documents every command's --json shape: this runs each command on a real
repository (real processes) and compares the output's fields with the page's tables."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from oxi_core.cli import build_cli
from oxi_core.ledger import events as ev
from oxi_core.testing.repos import exec_agent_toml, make_repo
from tests.conftest import CHECK_ANSWERS, SCRIPTED_AGENT, roadmap
from tests.test_cli_voice import leaf_commands
from tests.unattended.support import OxiProcess, run_oxi, running, wait_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"
# Shapes documented but not run here: they need a staged auto-improve proposal, which only a
# scan with sources and a judge makes (tests/auto_improve covers the commands themselves).
NOT_RUN = {"auto-improve accept", "auto-improve reject"}


def documented() -> dict[str, dict[str, set[str]]]:
    """command -> {"": top-level fields, "a[]": fields of a's items, "a": fields of object a}."""
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("<!-- shapes:"): text.index("<!-- end shapes -->")]
    shapes: dict[str, dict[str, set[str]]] = {}
    for section in re.split(r"^### ", block, flags=re.MULTILINE)[1:]:
        heading = re.match(r"`oxi ([a-z -]+?)(?: [A-Z]+)* --json`", section)
        assert heading is not None, section[:60]
        fields: dict[str, set[str]] = {"": set()}
        for row in re.findall(r"^\| (`.*?) \|", section, flags=re.MULTILINE):
            for name in re.findall(r"`([\w.\[\]]+)`", row):
                parent, _, leaf = name.rpartition(".")
                fields.setdefault(parent, set()).add(leaf)
        shapes[heading[1]] = fields
    return shapes


def check(command: str, output: dict[str, Any], shape: dict[str, set[str]]) -> None:
    assert output.pop("version") == 1 and output.pop("command") == command
    assert set(output) == shape[""], (command, set(output) ^ shape[""])
    for parent, fields in shape.items():
        if not parent:
            continue
        value: Any = output
        for part in parent.split("."):
            value = value[part.removesuffix("[]")]
        if parent.endswith("[]"):
            if not value:
                continue  # nothing to compare in an empty list
            value = value[0]
        assert set(value) == fields, (command, parent, set(value) ^ fields)


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("json-doc")
    work = make_repo(base, {"roadmap.md": roadmap(("T1-1", "answer", "a"), ("T1-2", "flaky", "b"),
                                                  ("T1-3", "wrong first", "c"))}, name="work")
    work.write("oxi.toml", exec_agent_toml(SCRIPTED_AGENT, critic=CHECK_ANSWERS, engine={
        "retry_base_s": 0.01, "retry_max_s": 0.02, "max_concurrent": 3}))
    for _ in range(4):
        assert run_oxi(["tick"], cwd=work.root).returncode == 0
    held = make_repo(base, {"roadmap.md": roadmap(("T1-5", "pricey", "a"))}, name="held")
    held.write("oxi.toml", exec_agent_toml(SCRIPTED_AGENT, engine={
        "task_caps_usd": {"exec": 0.5}, "estimates_usd": {"exec": 0.8}}))
    assert run_oxi(["tick"], cwd=held.root).returncode == 0
    fresh = make_repo(base, {}, name="fresh")
    return {"work": work.root, "held": held.root, "fresh": fresh.root, "base": base}


def argv_for(command: str, repos: dict[str, Path]) -> tuple[list[str], Path]:
    work, base = repos["work"], repos["base"]
    special: dict[str, tuple[list[str], Path]] = {
        "task show": (["task", "show", "T1-3"], work),
        "task retry": (["task", "retry", "T1-2"], work),
        "task release": (["task", "release", "T1-5"], repos["held"]),
        "route explain": (["route", "explain", "T1-1"], work),
        "ledger backup": (["ledger", "backup", str(base / "copy.db")], work),
        "ledger restore": (["ledger", "restore", str(base / "copy.db"), "--force"], work),
        "init": (["init"], repos["fresh"]),
        "roadmap prune": (["roadmap", "prune", "--dry-run"], work),
        # Serving runs until stopped (tests/dashboard covers it); the export prints the same.
        "dashboard": (["dashboard", "--export", str(base / "site")], work),
    }
    return special.get(command, (command.split(), work))


def stopped_saturate(repo_root: Path, logs: Path) -> str:
    """`oxi saturate --json` started, then stopped by SIGTERM: its one document."""
    with running(OxiProcess(["saturate", "--interval", "0.1", "--json"], repo_root,
                            log_dir=logs / "saturate")) as daemon:
        wait_for(lambda: events_of_root(repo_root, ev.SATURATE_STARTED), what="saturate")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.stderr
        return daemon.stdout


def events_of_root(root: Path, event_type: str) -> list[Any]:
    from oxi_core.ledger import Ledger

    with Ledger(root / ".oxi" / "oxi.db") as ledger:
        return ledger.events(types=[event_type])


def test_every_command_with_json_has_a_documented_shape() -> None:
    commands = {" ".join(path) for path, _ in leaf_commands(build_cli())}
    assert commands == set(documented())


def test_every_documented_shape_is_what_the_command_prints(repos: dict[str, Path]) -> None:
    shapes = documented()
    order = sorted(shapes, key=lambda c: (c in ("ledger restore", "task retry"), c))
    checked = []
    for command in order:  # backup before restore; retry after show
        if command in NOT_RUN:
            continue
        if command == "saturate":
            stdout = stopped_saturate(repos["work"], repos["base"])
        else:
            argv, cwd = argv_for(command, repos)
            result = run_oxi([*argv, "--json"], cwd=cwd)
            assert result.returncode in (0, 1), (command, result.stderr)  # 1: checks failed
            stdout = result.stdout
        check(command, json.loads(stdout), shapes[command])
        checked.append(command)
    assert len(checked) == len(shapes) - len(NOT_RUN)


def test_line_delimited_outputs_carry_version_and_command(repos: dict[str, Path]) -> None:
    tail = run_oxi(["ledger", "tail", "-n", "3", "--jsonl"], cwd=repos["work"])
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert len(lines) == 3
    assert all(line.keys() == {"version", "command", "event"} for line in lines)
    fields = documented()["ledger tail"]["events[]"]
    assert all(set(line["event"]) == fields for line in lines)
