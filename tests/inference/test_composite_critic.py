"""Critics compose: `critic = ["critic", "review"]` (the tests, then the llm reviewer) approves
only when both approve, and the retry's prompt carries the findings of each."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from oxi_core.engine.engine import Engine
from oxi_core.ledger import events as ev
from oxi_core.testing import repos
from oxi_core.testing.model_server import Text
from oxi_core.testing.openai_server import OpenAIServer
from tests.conftest import load, roadmap, tick

REQUEST_CHANGES = json.dumps({"verdict": "REQUEST_CHANGES", "summary": "needs a docstring",
                              "findings": [{"file": "feature_3.py", "line": 1,
                                            "problem": "add a module docstring"}]})
APPROVE = json.dumps({"verdict": "APPROVE", "findings": [], "summary": "fine"})


def composite_repo(repo_factory: Callable[..., repos.TestRepo], server: OpenAIServer,
                   prompt_log: Path) -> repos.TestRepo:
    extra = (f'\n[inference.gateway]\ntype = "litellm"\n'
             f'kwargs = {{ base_url = "{server.api_base_url}" }}\n'
             '\n[judges.review]\ntype = "llm"\n'
             '\n[roles]\nworker = "worker"\ncritic = ["critic", "review"]\n')
    return repo_factory(roadmap(("T1-3", "answer the question", "feature_3.py")),
                        agent_env={"PROMPT_LOG": str(prompt_log)}, extra_toml=extra)


def test_both_critics_findings_reach_the_retry_and_both_must_approve(
    repo_factory: Callable[..., repos.TestRepo], prompt_log: Path,
) -> None:
    # Attempt 1: the tests fail (ANSWER = 41) and the reviewer requests a docstring.
    # Attempt 2: the tests pass; the reviewer approves. Then it merges.
    with OpenAIServer([Text(REQUEST_CHANGES), Text(APPROVE)]) as server:
        engine = Engine(load(composite_repo(repo_factory, server, prompt_log)))
        tick(engine)
        first = engine.ledger.task("T1-3")
        assert first is not None and first.status == "planned"
        tick(engine)
        assert len(server.turns) == 2
    task = engine.ledger.task("T1-3")
    assert task is not None and task.status == "merged", task.last_error
    verdicts = engine.ledger.events(types=[ev.CRITIC_VERDICT], task_id="T1-3")
    assert [v.payload["verdict"] for v in verdicts] == ["REJECT", "APPROVE"]
    assert verdicts[0].payload["critic"] == ["critic", "review"]
    reasons = verdicts[0].payload["reasons"]
    assert reasons[0].startswith("[critic] `")
    assert reasons[1] == "[review] feature_3.py:1: add a module docstring"
    second_prompt = (prompt_log / "T1-3.log").read_text().split("\n=====\n")[1]
    assert "[critic] `" in second_prompt and "wrong ANSWER in feature_3.py" in second_prompt
    assert "[review] feature_3.py:1: add a module docstring" in second_prompt
    # The reviewer saw the real diff of the branch.
    diff = server.turns[0].body["messages"][1]["content"]
    assert "+ANSWER = 41" in diff


def test_one_approval_is_not_enough(repo_factory: Callable[..., repos.TestRepo],
                                    prompt_log: Path) -> None:
    # The tests pass at once for T1-1; the reviewer rejects: no merge, back to planned.
    with OpenAIServer([Text(REQUEST_CHANGES)]) as server:
        repo = composite_repo(repo_factory, server, prompt_log)
        repo.write("roadmap.md", roadmap(("T1-1", "answer", "feature_1.py")))
        repo.commit_and_push("roadmap: one item")
        engine = Engine(load(repo))
        tick(engine)
    task = engine.ledger.task("T1-1")
    assert task is not None and task.status == "planned", [
        (e.type, e.payload) for e in engine.ledger.events(task_id="T1-1")]
    [verdict] = engine.ledger.events(types=[ev.CRITIC_VERDICT], task_id="T1-1")
    assert verdict.payload["verdict"] == "REJECT"
    assert verdict.payload["reasons"] == ["[review] feature_3.py:1: add a module docstring"]


def test_an_abstaining_critic_leaves_the_pull_request_to_a_person(
    repo_factory: Callable[..., repos.TestRepo], prompt_log: Path,
) -> None:
    with OpenAIServer([Text("LGTM")]) as server:
        engine = Engine(load(composite_repo(repo_factory, server, prompt_log)))
        repo_root = engine.config.paths.repo_root
        (repo_root / "roadmap.md").write_text(roadmap(("T1-1", "answer", "feature_1.py")))
        tick(engine)
    task = engine.ledger.task("T1-1")
    assert task is not None and task.status == "in_review" and task.attempts == 1
    [unavailable] = engine.ledger.events(types=[ev.CRITIC_UNAVAILABLE], task_id="T1-1")
    assert "not JSON" in unavailable.payload["reasons"][0]
    assert not engine.ledger.events(types=[ev.AUTO_MERGE_ARMED])
