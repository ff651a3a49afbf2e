"""scripts/auto_improve_routine.py as a scheduled runner runs it: a real process against a
repository whose newsletter source reads a site on 127.0.0.1; the first run of the day scans
and writes the digest, the second logs that it already ran and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from oxi_newsletter.testing import Site

from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.testing.repos import exec_agent_toml, make_repo
from tests.auto_improve.test_end_to_end import serve_latent_space

ROOT = Path(__file__).resolve().parents[2]
ROUTINE = ROOT / "scripts" / "auto_improve_routine.py"


def routine(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXI_")}
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run([sys.executable, str(ROUTINE), "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=300, check=False,
                          stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_the_routine_scans_once_a_day(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": "# roadmap\n\n**T1-1 · agents**\n_async_\n"})
    with Site() as site:
        serve_latent_space(site)
        tables = {"sources": {"latent_space": {"type": "newsletter", "kwargs": {
                      "publication": "latent_space", "base_url": site.base_url,
                      "archive_limit": 2}}},
                  # The gateway's key is not in this environment: the judge cannot run, so
                  # the candidates wait, and the scan still finishes.
                  "inference": {"gateway": {"type": "litellm", "kwargs": {
                      "base_url": "http://127.0.0.1:9/v1",
                      "api_key": {"env": "OXI_TEST_UNSET_GATEWAY_KEY"}}}},
                  "auto_improve": {"lookback_days": 3650}}
        repo.write("oxi.toml", exec_agent_toml(["true"]) + "\n" + tomli_w.dumps(tables))
        first = routine(repo.config)
        second = routine(repo.config)
    assert first.returncode == 0, first.stderr
    assert "auto_improve_routine_done" in first.stdout + first.stderr
    digests = list((repo.root / ".oxi").glob("auto-improve-digest-*.md"))
    assert len(digests) == 1
    held = digests[0].read_text().split("## Budget held")[1]
    assert held.split("##")[0].count("\n- ") == 3
    assert "not_configured: prompt-injection-screen" in held
    assert second.returncode == 0, second.stderr
    assert "a scan already finished on" in second.stdout + second.stderr
    ledger = Ledger(repo.root / ".oxi" / "oxi.db")
    assert len(ledger.events(types=[ev.AUTO_IMPROVE_SCAN_FINISHED])) == 1
    assert len(ledger.events(types=[ev.AUTO_IMPROVE_SOURCE_FETCHED])) == 1
    assert ledger.events(types=[ev.AUTO_IMPROVE_SCAN_SKIPPED])[0].payload["reason"].startswith(
        "a scan already finished")


def test_the_actions_schedule_runs_the_routine_daily_at_five() -> None:
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe").load((ROOT / ".github/workflows/auto-improve.yml").read_text())
    assert workflow["on"]["schedule"] == [{"cron": "0 5 * * *"}]
    steps = workflow["jobs"]["scan"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert ".venv/bin/python scripts/auto_improve_routine.py" in runs
    # Secrets come from the runner's vault, never from a file in the repository.
    scan = next(step for step in steps if step.get("name") == "Scan")
    assert all(value.startswith("${{ secrets.") for value in scan["env"].values())
