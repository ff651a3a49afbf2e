"""Shadow runs (T2-35): observed only; the primary result is the same with or without them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from oxi_core.cli import cli
from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from tests.conftest import SCRIPTED_AGENT, load, roadmap, tick

SHADOW = f"""
[agents.shadow]
type = "exec"
kwargs = {{ argv = {json.dumps(SCRIPTED_AGENT)}, timeout_s = 60 }}

[roles]
worker = "worker"
shadow = "shadow"
"""
VOLATILE = {"duration_s", "transcript"}  # the transcript lives in each repository's .oxi/


def primary_results(engine: Engine) -> list[dict[str, object]]:
    return [{k: v for k, v in e.payload.items() if k not in VOLATILE}
            for e in engine.ledger.events(types=[ev.DISPATCH_RESULT])]


def test_shadow_on_records_a_pair_and_leaves_the_primary_result_unchanged(repo_factory) -> None:
    items = roadmap(("T1-1", "answer the question", "feature_1.py"))
    plain = repo_factory(items)
    shadowed = repo_factory(items, extra_toml=SHADOW)
    plain_engine, shadow_engine = Engine(load(plain)), Engine(load(shadowed))
    tick(plain_engine)
    tick(shadow_engine)

    assert primary_results(shadow_engine) == primary_results(plain_engine)
    assert shadow_engine.ledger.task("T1-1").status == "merged"  # type: ignore[union-attr]
    assert plain.origin_file("feature_1.py") == shadowed.origin_file("feature_1.py")

    primary, shadow = shadow_engine.ledger.events(types=[ev.AGENTIC_SHADOW_OBSERVED])
    assert primary.payload["pair_id"] == shadow.payload["pair_id"]
    assert (primary.payload["role"], shadow.payload["role"]) == ("primary", "shadow")
    assert primary.payload["shape_match"] is True
    assert primary.payload["files"] == shadow.payload["files"] == ["feature_1.py"]
    assert primary.payload["cost_delta_usd"] == 0.0
    # The shadow's spend is recorded once, on its own event, and counts toward the day.
    assert (primary.cost_usd, shadow.cost_usd) == (0.0, 0.01)
    assert shadow_engine.ledger.total_spend() == plain_engine.ledger.total_spend() + 0.01
    # The sibling worktree is gone; the shadow's work was never pushed.
    assert not any((shadowed.root / ".oxi" / "worktrees" / "shadow").iterdir())
    assert "shadow" not in shadowed.git("ls-remote", "origin")

    result = CliRunner().invoke(cli, ["--config", str(shadowed.config), "shadow", "report",
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["count"] == 1 and report["agreement_rate"] == 1.0
    assert report["pairs"][0]["shadow"]["agent"] == "shadow"


def test_shadow_named_by_the_environment_that_changes_other_files_disagrees(
    repo_factory, monkeypatch
) -> None:
    extra = f"""
[agents.other]
type = "exec"
kwargs = {{ argv = {json.dumps(SCRIPTED_AGENT)}, env = {{ AGENT_TARGET = "x.txt" }} }}

[roles]
worker = "worker"
"""
    repo = repo_factory(roadmap(("T1-5", "notes", "a note")), extra_toml=extra, critic=False)
    monkeypatch.setenv("OXI_AGENTIC_SHADOW", "other")
    engine = Engine(load(repo))
    tick(engine)
    primary, shadow = engine.ledger.events(types=[ev.AGENTIC_SHADOW_OBSERVED])
    assert primary.payload["files"] == ["notes/T1-5.txt"]
    assert shadow.payload["files"] == ["x.txt"]
    assert primary.payload["shape_match"] is False
    report = CliRunner().invoke(cli, ["--config", str(repo.config), "shadow", "report"])
    assert report.exit_code == 0, report.output
    assert "1 pairs, agreement 0%" in report.output
    assert repo.origin_file("x.txt") is None
