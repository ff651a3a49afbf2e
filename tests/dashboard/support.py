"""A repository whose ledger real `oxi tick` runs wrote (exec agent, local forge, a command
critic, a shadow agent): a merge, a task merged on its second attempt after the critic
rejected the first, a retry waiting for its next attempt, a hold, two failures, shadow pairs
that agree and disagree; then a real auto-improve scan (a feed on 127.0.0.1, a scripted judge,
fixed embeddings). And `oxi dashboard` run as a real process against it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from oxi_core.testing.repos import TestRepo, exec_agent_toml, make_repo
from tests.conftest import CHECK_ANSWERS, roadmap
from tests.unattended.support import ROOMY_HOST, run_oxi

AGENT = [sys.executable, str(Path(__file__).with_name("agent.py"))]
SCRIPT_TITLE = "<script>window.__title_ran = 1</script> tidy <b>the</b> docs"
HOLD_ENGINE = {"estimates_usd": {"exec": 0.8}, "task_caps_usd": {"exec": 0.5},
               "default_task_cap_usd": 0.5}
ENGINE = {"max_concurrent": 8, "retry_base_s": 3600, "retry_max_s": 7200,
          "budget_per_day_usd": 20.0}
SHADOW = f"""
[agents.shadow]
type = "exec"

[agents.shadow.kwargs]
argv = {json.dumps(AGENT)}
timeout_s = 60
env = {{ AGENT_TARGET = "x.txt", AGENT_COST = "0.02" }}

[roles]
worker = "worker"
shadow = "shadow"
"""
ITEMS = (
    ("T1-1", "answer the question", "feature_1.py"),
    ("T1-2", "flaky provider", "retries"),
    ("T1-3", "wrong first", "rejected once"),
    ("T1-4", "changes nothing", "fails"),
    ("T1-6", SCRIPT_TITLE, "held over its cap"),
    ("T1-7", "write a note", "a note"),
    ("T1-8", "fails loudly", "with markup in its reason"),
)


def toml(engine: dict[str, Any], agent_env: dict[str, str] | None = None) -> str:
    return exec_agent_toml(AGENT, critic=CHECK_ANSWERS, engine=engine,
                           agent_env=agent_env) + SHADOW


def tick(repo: TestRepo) -> None:
    result = run_oxi(["tick"], cwd=repo.root, timeout=300)
    assert result.returncode == 0, result.stderr


def build_repo(base: Path) -> TestRepo:
    repo = make_repo(base, {"roadmap.md": roadmap(ITEMS[4])}, name="ledger-repo")
    repo.write("oxi.toml", toml({**ENGINE, **HOLD_ENGINE}))
    tick(repo)  # T1-6 held: its estimate is over its cap
    repo.write("oxi.toml", toml(ENGINE))
    repo.write("roadmap.md", roadmap(*ITEMS))
    for _ in range(3):
        tick(repo)
    scan_auto_improve(repo)
    return repo


def scan_auto_improve(repo: TestRepo) -> None:
    """One real scan on the repository's ledger: fetch, rank, dedup, judge, stage, digest."""
    from oxi_core.auto_improve.judge import ProposalJudge
    from oxi_core.auto_improve.scan import ScanTools, scan
    from oxi_core.auto_improve.settings import AutoImproveSettings
    from oxi_core.config import load_config
    from oxi_core.ledger import Ledger
    from oxi_core.models import InferenceResult
    from tests.auto_improve.support import (
        JsonFeedSource,
        bag_embed,
        feed_item,
        rubric,
        serve,
    )

    now = datetime.now(UTC)
    published = (now - timedelta(hours=2)).isoformat()
    items = [feed_item("a", "Faster ledger queries with covering indexes",
                       "Covering indexes make status queries fast.", published=published),
             feed_item("b", "<script>window.__proposal_ran = 1</script> A web dashboard",
                       "Operators want a page.", published=published),
             feed_item("c", "Celebrity gossip", "Nothing to do with code.", published=published)]
    verdicts = {"Faster ledger queries with covering indexes": rubric(5, 4, 1),
                "<script>window.__proposal_ran = 1</script> A web dashboard": rubric(4, 4, 2)}

    def complete(role: str, messages: Any, max_tokens: int) -> InferenceResult:
        user = str(messages[-1]["content"])
        if "screen untrusted text" in str(messages[0]["content"]):
            text = json.dumps({"injection": False, "reason": "an ordinary post"})
        else:
            found = re.search(r"<<<CANDIDATE \w+>>>\ntitle: ([^\n]*)", user)
            text = verdicts.get(found.group(1) if found else "", rubric(1, 1))
        return InferenceResult(text=text, model="scripted", cost_usd=0.0,
                               cost_source="gateway", tokens_in=10, tokens_out=10)

    config = load_config(repo.config, secrets=False)
    with serve({"/feed.json": (200, json.dumps(items))}) as base_url, \
            Ledger(config.paths.ledger) as ledger:
        judge = ProposalJudge(complete, lambda: 0.0, 5.0)
        report = scan(ledger=ledger, paths=config.paths, settings=AutoImproveSettings(),
                      sources={"feed": JsonFeedSource(f"{base_url}/feed.json")},
                      tools=lambda: ScanTools(bag_embed, judge), forge=config.forge,
                      notify=lambda _event: None, now=now)
    assert len(report.emitted) == 2, report.as_json()


@attrs.frozen
class Served:
    url: str
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


@contextmanager
def dashboard(repo_root: Path, *args: str) -> Iterator[Served]:
    """`oxi dashboard --port 0 ARGS` as its own process; yields where it listens (and what it
    said on stderr), and stops it after."""
    env = {**os.environ, "OXI_RAISE_ERRORS": "0", "OXI_PROBE_READINGS": ROOMY_HOST}
    env.pop("PYTEST_CURRENT_TEST", None)
    with tempfile.TemporaryDirectory() as folder:
        stderr_path = Path(folder) / "stderr"
        with stderr_path.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "oxi_core", "dashboard", "--port", "0", *args],
                cwd=repo_root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=err, text=True, start_new_session=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            found = re.search(r"(http://\S+/)", line)
            if found is None:
                proc.wait(timeout=30)
                raise AssertionError(f"oxi dashboard did not start: {line}"
                                     f"{stderr_path.read_text()}")
            yield Served(found.group(1), stderr_path)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()

