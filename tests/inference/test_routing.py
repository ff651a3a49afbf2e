"""routing.yaml and route_for (T2-39): rules, matches, errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxi_core.inference.routing import (
    DEFAULT_ROUTING_PATH,
    ModelChoice,
    ModelRef,
    RoleNotConfiguredError,
    RoutingError,
    load_routing,
    route_for,
)
from oxi_core.tasks import Task, TaskStatus

DEFAULTS = load_routing(paths=[DEFAULT_ROUTING_PATH])


def task(tier: int, title: str, files: tuple[str, ...] = ()) -> Task:
    return Task(id=f"T{tier}-16", status=TaskStatus.PLANNED, tier=tier, title=title,
                files_touched=files)


def test_a_tier_2_doc_task_is_promoted_to_codex_with_claude_as_fallback() -> None:
    choice = route_for("worker", task(2, "doc-lint for the README"), routing=DEFAULTS)
    assert choice == ModelChoice(
        role="worker", adapter_name="codex", model_id=None,
        fallback_chain=(ModelRef("claude"),), rule="doc-tier-2-to-codex",
        why=choice.why, source=choice.source)
    assert choice.source.endswith("routing.yaml:41")


@pytest.mark.parametrize("item", [task(1, "doc-lint"), task(2, "Add retries"),
                                  task(3, "Documentation pass")])
def test_every_other_task_goes_to_the_configured_worker(item: Task) -> None:
    choice = route_for("worker", item, routing=DEFAULTS)
    assert (choice.adapter_name, choice.rule) == ("default", "default")


def test_choices_are_frozen() -> None:
    choice = route_for("critic", routing=DEFAULTS)
    with pytest.raises(AttributeError):
        choice.model_id = "x"  # type: ignore[misc]


@pytest.mark.parametrize("role", ["critic", "heartbeat-triage", "auto-improve-judge",
                                  "prompt-injection-screen", "summary"])
def test_every_inference_role_has_a_gateway_model(role: str) -> None:
    choice = route_for(role, routing=DEFAULTS)
    assert choice.adapter_name == "gateway" and choice.model_id


def test_an_unknown_role_is_refused_by_name() -> None:
    with pytest.raises(RoleNotConfiguredError, match="role 'classifier' has no rules"):
        route_for("classifier", routing=DEFAULTS)


def test_a_repository_file_replaces_the_roles_it_lists_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    (tmp_path / "routing.yaml").write_text(
        "version: 1\nroles:\n  heartbeat-triage:\n    - name: grok\n      adapter: grok\n"
        "      model: grok-4-fast-non-reasoning\n")
    routing = load_routing(tmp_path)
    assert route_for("heartbeat-triage", routing=routing).adapter_name == "grok"
    assert route_for("critic", routing=routing).adapter_name == "gateway"
    assert routing.sources[-1] == str(tmp_path / "routing.yaml")


def test_match_by_files(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "roles:\n  worker:\n    - name: docs-folder\n      match: {files: ['docs/*']}\n"
        "      adapter: codex\n    - name: default\n      adapter: default\n")
    routing = load_routing(paths=[path])
    assert route_for("worker", task(1, "x", ("docs/a/b.md",)), routing=routing).adapter_name \
        == "codex"
    assert route_for("worker", task(1, "x", ("src/a.py",)), routing=routing).rule == "default"
    checks = routing.explain("worker", task(1, "x"))
    assert [(c.rule.name, c.matched, c.reason) for c in checks] == [
        ("docs-folder", False, "the task touches no known file"),
        ("default", True, "matches every task")]


def test_a_role_whose_rules_all_fail_to_match_is_not_configured(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("roles:\n  worker:\n    - match: {tier: 1}\n      adapter: codex\n")
    with pytest.raises(RoleNotConfiguredError, match=r"no rule of role 'worker' matches task"):
        route_for("worker", task(2, "x"), routing=load_routing(paths=[path]))


def test_a_missing_file_names_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OXI_ROUTING", str(tmp_path / "nowhere.yaml"))
    with pytest.raises(RoutingError, match=r"nowhere\.yaml: the routing file does not exist"):
        load_routing()


@pytest.mark.parametrize(("text", "line", "message"), [
    ("roles:\n  worker:\n    - adapter: codex\n      match: {tier: two}\n", 4,
     "expected a tier number"),
    ("roles:\n  worker:\n    - name: a\n      adapter: codex\n      colour: red\n", 5,
     "unknown key"),
    ("roles:\n  critic:\n    - name: a\n      adapter: gateway\n", 3,
     "needs a model"),
    ("roles:\n  wizard:\n    - adapter: codex\n", 2, "unknown role"),
    ("roles:\n  worker:\n    - adapter: codex\n     bad indent: [\n", 4, "invalid YAML"),
    ("roles:\n  worker:\n    - adapter: [codex]\n", 3, "expected the name of an adapter"),
    ("roles:\n  worker:\n    - adapter: codex\n      fallback: [{model: x}]\n", 4,
     "expected an adapter name or {adapter: NAME, model: MODEL}"),
])
def test_a_malformed_file_is_an_error_naming_path_and_line(
    tmp_path: Path, text: str, line: int, message: str,
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    with pytest.raises(RoutingError) as caught:
        load_routing(paths=[path])
    assert f"{path}:{line}" in str(caught.value)
    assert message in str(caught.value)


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("roles:\n  summary:\n    - adapter: a\n      model: m1\n")
    assert route_for("summary", routing=load_routing(paths=[path])).model_id == "m1"
    path.write_text("roles:\n  summary:\n    - adapter: a\n      model: model-two\n")
    assert route_for("summary", routing=load_routing(paths=[path])).model_id == "model-two"
