"""Seeing why: `oxi task list|show`, the tick's summary, the status text, each attempt's
transcript (redacted, with a retention limit) and `oxi ledger path`, through the real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from oxi_core.testing.repos import exec_agent_toml, make_repo
from tests.conftest import CHECK_ANSWERS, roadmap
from tests.unattended.support import run_oxi

TALKATIVE_AGENT = """\
import json, os, pathlib
task = os.environ["OXI_TASK_ID"]
print(json.dumps({"type": "assistant", "text": f"working on {task}"}), flush=True)
print(json.dumps({"type": "tool_use", "name": "Write", "input": {"path": f"notes/{task}.txt"}}))
print("the key is sk-ant-api03-" + "x" * 40, flush=True)  # a secret the agent leaked
pathlib.Path("notes").mkdir(exist_ok=True)
pathlib.Path(f"notes/{task}.txt").write_text("done\\n")
print(json.dumps({"type": "result", "cost_usd": 0.02, "input_tokens": 10, "output_tokens": 5}))
"""


def show(repo_root: Path, task_id: str) -> dict:  # type: ignore[type-arg]
    result = run_oxi(["task", "show", task_id, "--json"], cwd=repo_root)
    assert result.returncode == 0, result.stderr
    data: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return data


def test_task_show_tells_each_attempts_outcome_reason_cost_pr_and_critic(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-2", "flaky provider", "x"), ("T1-3", "wrong first", "y")),
                        engine={"max_concurrent": 2})
    for _ in range(4):
        assert run_oxi(["tick"], cwd=repo.root).returncode == 0

    rejected = show(repo.root, "T1-3")
    failed = show(repo.root, "T1-2")
    text = run_oxi(["task", "show", "T1-3"], cwd=repo.root).stdout

    first, second = rejected["attempts"]
    assert first["outcome"] == "rejected by the critic"
    assert first["critic"][0]["verdict"] == "REJECT"
    assert "wrong ANSWER in feature_3.py" in first["critic"][0]["reasons"][0]
    assert first["pr"] is not None and first["cost_source"] == "provider"
    assert first["cost_usd"] == 0.01 and first["worktree"].endswith("/.oxi/worktrees/T1-3")
    assert second["outcome"] == "merged" and second["critic"][0]["verdict"] == "APPROVE"
    assert rejected["task"]["status"] == "merged" and rejected["task"]["cost_usd"] == 0.02
    assert rejected["transcript"]["attempt"] == 2 and rejected["transcript"]["exists"]
    assert rejected["transcript"]["tail"][-1]["kind"] == "result"
    assert [a["outcome"] for a in failed["attempts"]] == ["retrying", "retrying", "failed"]
    assert failed["attempts"][-1]["reason"].startswith(
        "exited 75: provider overloaded, try again later")
    assert failed["attempts"][0]["classification"] == "RETRYABLE_TRANSIENT"
    assert "attempt 1 (" in text and "): rejected by the critic: " in text
    assert "  critic critic: REJECT\n    `" in text
    assert "transcript tail (attempt 2, " in text

    listed = json.loads(run_oxi(["task", "list", "--json"], cwd=repo.root).stdout)["tasks"]
    assert {row["id"]: (row["status"], row["reason"][:30]) for row in listed} == {
        "T1-2": ("failed", "exited 75: provider overloaded"), "T1-3": ("merged", "")}
    only = json.loads(run_oxi(["task", "list", "--status", "failed", "--json"],
                              cwd=repo.root).stdout)["tasks"]
    assert [row["id"] for row in only] == ["T1-2"]


def test_a_ticks_summary_names_what_failed_and_what_is_held_with_the_reason(
    repo_factory,
) -> None:
    repo = repo_factory(roadmap(("T1-4", "changes nothing", "x")),
                        engine={"max_concurrent": 2, "task_caps_usd": {"exec": 0.5},
                                "estimates_usd": {"exec": 0.8}, "default_task_cap_usd": 0.5})
    repo.write("roadmap.md", roadmap(("T1-4", "changes nothing", "x")))
    first = run_oxi(["tick"], cwd=repo.root)
    repo.write("roadmap.md", roadmap(("T1-4", "changes nothing", "x"), ("T1-5", "pricey", "n")))
    second = run_oxi(["tick"], cwd=repo.root)
    status = run_oxi(["status"], cwd=repo.root)

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "oxi tick: held T1-4"  # $0.80 against a $0.50 cap
    assert ("  T1-4 held: estimated $0.80 is over the per-task cap of $0.50 "
            "(`oxi task release T1-4` to dispatch it anyway)") in first.stdout
    assert "held:      T1-4: estimated $0.80 is over the per-task cap of $0.50" in status.stdout
    assert "T1-5 held" in second.stdout

    released = run_oxi(["task", "release", "T1-4"], cwd=repo.root)
    assert released.returncode == 0, released.stderr
    third = run_oxi(["tick"], cwd=repo.root)
    assert third.stdout.splitlines()[0].startswith("oxi tick: dispatched T1-4")
    assert ("  T1-4 failed: no changes: the agent reported success but left no commit and no "
            "diff") in third.stdout
    assert "    see `oxi task show T1-4`" in third.stdout
    assert ("  T1-4     failed      changes nothing  (no changes: the agent reported success "
            "but left no commit and no diff)") in run_oxi(["status"], cwd=repo.root).stdout


def test_transcripts_are_redacted_and_only_the_newest_are_kept(tmp_path: Path) -> None:
    agent = tmp_path / "talkative_agent.py"
    agent.write_text(TALKATIVE_AGENT)
    repo = make_repo(tmp_path, {"roadmap.md": roadmap(
        ("T1-5", "one", "a"), ("T1-6", "two", "b"), ("T1-7", "three", "c"))})
    repo.write("oxi.toml", exec_agent_toml([sys.executable, str(agent)], critic=CHECK_ANSWERS,
                                           engine={"transcripts_keep": 2}))

    assert run_oxi(["tick"], cwd=repo.root).returncode == 0
    assert run_oxi(["tick"], cwd=repo.root).returncode == 0
    assert run_oxi(["tick"], cwd=repo.root).returncode == 0

    kept = sorted(p.relative_to(repo.root) for p in (repo.root / ".oxi").rglob("*.jsonl"))
    assert kept == [Path(".oxi/transcripts/T1-6/1.jsonl"), Path(".oxi/transcripts/T1-7/1.jsonl")]
    text = (repo.root / kept[-1]).read_text()
    assert "sk-ant-api03-xxxx" not in text and "[REDACTED]" in text
    assert [json.loads(line)["kind"] for line in text.splitlines()] == [
        "assistant", "tool_use", "assistant", "result"]
    tail = show(repo.root, "T1-7")["transcript"]["tail"]
    assert tail[0]["data"]["text"] == "working on T1-7"
    gone = show(repo.root, "T1-5")["transcript"]
    assert gone["exists"] is False and gone["tail"] == []
    assert "no transcript for attempt 1 (the agent printed nothing, or it was pruned)" in (
        run_oxi(["task", "show", "T1-5"], cwd=repo.root).stdout)


def test_ledger_path_says_where_the_ledger_is(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "one", "a")))

    text = run_oxi(["ledger", "path"], cwd=repo.root)
    data = json.loads(run_oxi(["ledger", "path", "--json"], cwd=repo.root).stdout)

    assert text.stdout == f"{repo.root / '.oxi' / 'oxi.db'}\n"
    assert data["path"] == str(repo.root / ".oxi" / "oxi.db") and data["exists"] is False
    assert not (repo.root / ".oxi").exists()  # finding it creates nothing
