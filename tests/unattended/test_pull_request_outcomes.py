"""What the engine does with what a forge reports about a pull request under review: auto-merge
refused by the repository (wait, or a guarded direct merge), a head someone else moved, a pull
request a person closed, the critic's findings on the pull request, a forge that refuses oxi's
credentials, and the forge's request counts. Real git, the real local forge."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from oxi_core.builtins.local_forge import LocalForge
from oxi_core.cli import cli
from oxi_core.config import OxiConfig, load_config
from oxi_core.engine.engine import Engine
from oxi_core.errors import ConfigError, ForgeSetupError
from oxi_core.ledger import events as ev
from oxi_core.models import Event, ForgeNotice, ForgeReport, PullRequest, PullRequestState
from oxi_core.plugins import load_plugins
from oxi_core.registry import Registration, Registry, build_registry
from oxi_core.status import status_report
from oxi_core.tasks import TaskStatus
from oxi_core.testing.repos import TestRepo as Repo
from oxi_core.testing.repos import run_git
from tests.conftest import roadmap, tick

RECEIVED: list[Event] = []


@attrs.define
class RecordingNotifier:
    def notify(self, event: Event) -> None:
        RECEIVED.append(event)


@attrs.define
class CountingForge(LocalForge):
    """A local forge that reports requests and a rate limit, as a hosted forge would."""

    def take_report(self) -> ForgeReport:
        return ForgeReport(requests=3, counted=1, details={"not_modified": 2},
                           notices=(ForgeNotice("rate_limited", "no calls until 12:00:00 UTC",
                                                {"resource": "core"}),))


@attrs.define
class LockedOutForge(LocalForge):
    """A forge that refuses oxi's token."""

    def list_open_prs(self) -> list[PullRequest]:
        raise ForgeSetupError("the forge refused the token from the environment variable "
                              "OXI_TEST_TOKEN (401 Bad credentials)")


def registry() -> Registry:
    found = build_registry(load_plugins())
    for (kind, name), cls in {("notifiers", "recording"): RecordingNotifier,
                              ("forges", "counting"): CountingForge,
                              ("forges", "locked_out"): LockedOutForge}.items():
        found.kinds[kind][name] = Registration(kind, name, cls, "tests", "tests")
    return found


@pytest.fixture(autouse=True)
def _clear_received() -> None:
    RECEIVED.clear()


def configure(repo: Repo, *, forge: str = "local", allow_auto_merge: bool = True,
              fallback: str | None = None) -> OxiConfig:
    original = repo.root / ".oxi-test-original.toml"  # configure() may run twice on a repo
    if not original.exists():
        original.write_text(repo.config.read_text())
    text = original.read_text()
    forge_table = f'[forges.local]\ntype = "{forge}"\n'
    if not allow_auto_merge:
        forge_table += "kwargs = { allow_auto_merge = false }\n"
    text = text.replace('[forges.local]\ntype = "local"\n', forge_table)
    if fallback is not None:
        text = text.replace("[engine]\n", f'[engine]\nauto_merge_fallback = "{fallback}"\n')
    repo.config.write_text(text + '\n[notifiers.recording]\ntype = "recording"\n')
    return load_config(repo.config, registry=registry())


def events(engine: Engine, *types: str) -> list[Event]:
    return engine.ledger.events(types=list(types))


def test_a_refused_auto_merge_is_recorded_notified_once_and_waits(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    engine = Engine(configure(repo, allow_auto_merge=False))
    for _ in range(3):
        tick(engine)

    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW
    (refused,) = events(engine, ev.AUTO_MERGE_REFUSED)
    assert refused.payload["reason"] == "Auto merge is not allowed for this repository"
    assert refused.payload["fallback"] == "wait"
    assert [e.type for e in RECEIVED].count(ev.AUTO_MERGE_REFUSED) == 1
    assert repo.origin_log() == ["initial commit"]  # nothing merged behind a person's back


def test_the_direct_fallback_merges_exactly_the_approved_head(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    engine = Engine(configure(repo, allow_auto_merge=False, fallback="direct"))
    report = tick(engine)

    assert report.merged == ["T1-5"]
    (merged,) = events(engine, ev.TASK_MERGED)
    assert merged.payload["how"] == "direct"
    assert events(engine, ev.AUTO_MERGE_REFUSED)[0].payload["fallback"] == "direct"
    assert repo.origin_file("notes/T1-5.txt") == "T1-5 was here\n"


def test_a_head_someone_else_moved_is_never_merged_and_is_notified_once(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    engine = Engine(configure(repo, allow_auto_merge=False))
    tick(engine)  # approved, refused, waiting
    task = engine.ledger.task("T1-5")
    assert task is not None and task.branch is not None and task.pr_number is not None
    pushed = events(engine, ev.BRANCH_PUSHED)[-1].payload["head"]
    verdict = events(engine, ev.CRITIC_VERDICT)[-1].payload
    assert verdict["verdict"] == "APPROVE" and verdict["head"] == pushed

    # A person pushes to the branch under review (in the origin, as a push would).
    other = repo.root.parent / "someone"
    run_git(["clone", "-q", "--branch", task.branch, str(repo.origin), str(other)], repo.root)
    (other / "theirs.txt").write_text("mine\n")
    run_git(["add", "-A"], other)
    run_git(["commit", "-qm", "a person's change"], other)
    run_git(["push", "-q", "origin", f"HEAD:{task.branch}"], other)
    moved_to = run_git(["rev-parse", "HEAD"], other)

    # Even with the direct fallback now, the moved head is not what the critic approved.
    engine = Engine(configure(repo, allow_auto_merge=False, fallback="direct"))
    tick(engine)
    tick(engine)

    (moved,) = events(engine, ev.PR_HEAD_MOVED)
    assert moved.payload["pushed"] == pushed and moved.payload["head"] == moved_to
    assert [e.type for e in RECEIVED].count(ev.PR_HEAD_MOVED) == 1
    assert engine.ledger.task("T1-5").status is TaskStatus.IN_REVIEW  # type: ignore[union-attr]
    assert events(engine, ev.TASK_MERGED) == []
    assert repo.origin_log() == ["initial commit"]


def test_a_pull_request_a_person_closed_is_never_reopened_or_armed_again(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    config = configure(repo, allow_auto_merge=False)
    engine = Engine(config)
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.pr_number is not None
    forge: LocalForge = config.forge
    forge._set(task.pr_number, state="closed", closed_reason="")  # a person closes it
    arming_before = len(events(engine, ev.AUTO_MERGE_ARMED, ev.AUTO_MERGE_REFUSED))

    for _ in range(3):
        tick(engine)

    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.ABANDONED
    (closed,) = events(engine, ev.PR_CLOSED)
    assert closed.payload["reason"] == "closed by a person"
    assert len(events(engine, ev.AUTO_MERGE_ARMED, ev.AUTO_MERGE_REFUSED)) == arming_before
    assert forge.get_pr(task.pr_number).state is PullRequestState.CLOSED
    assert engine.ledger.events(types=[ev.TASK_CLAIMED], task_id="T1-5")[-1].payload[
        "attempt"] == 1  # not dispatched again


def test_the_critics_findings_are_posted_on_the_pull_request(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-3", "answer again", "feature_3.py holds the answer")))
    config = configure(repo)
    engine = Engine(config)
    tick(engine)  # the first answer is wrong: rejected
    tick(engine)  # the second is right: approved and merged
    forge: LocalForge = config.forge
    # The second attempt pushes to the same branch, so both reviews land on one PR.
    (number,) = {e.payload["pr"] for e in events(engine, ev.PR_OPENED)}
    reviews = [c for c in _comments(forge, number) if c["kind"] == "review"]

    assert engine.ledger.task("T1-3").status is TaskStatus.MERGED  # type: ignore[union-attr]
    assert [r["body"].splitlines()[0] for r in reviews] == [
        "**oxi critic `critic`: REJECT**", "**oxi critic `critic`: APPROVE**"]
    assert reviews[0]["body"].count("```") == 2  # the findings are fenced as text
    assert "```text\n" in reviews[0]["body"]
    assert "wrong ANSWER in feature_3.py: expected 42\n```" in reviews[0]["body"]
    posted = events(engine, ev.PR_REVIEW_POSTED)
    assert [p.payload["posted"] for p in posted] == [True, True]


def _comments(forge: LocalForge, number: int) -> list[dict[str, Any]]:
    import json

    rows = forge.context.ledger.query("SELECT comments FROM pull_requests WHERE number = ?",
                                      (number,))
    found: list[dict[str, Any]] = json.loads(rows[0][0])
    return found


def test_a_forge_that_refuses_the_token_pauses_the_engine_and_fails_nothing(
    repo_factory,
) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    engine = Engine(configure(repo, forge="locked_out"))
    report = tick(engine)

    assert report.dispatched == []
    assert engine.paused()
    (paused,) = events(engine, ev.ENGINE_PAUSED)
    assert "OXI_TEST_TOKEN" in paused.payload["reason"]
    assert "401 Bad credentials" in paused.payload["reason"]
    assert engine.ledger.task("T1-5").status is TaskStatus.PLANNED  # type: ignore[union-attr]
    assert events(engine, ev.TASK_FAILED) == []
    assert [e.type for e in RECEIVED] == [ev.ENGINE_PAUSED]


def test_the_forges_requests_are_recorded_per_tick_and_shown_by_status(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")))
    engine = Engine(configure(repo, forge="counting"))
    report = tick(engine)
    tick(engine)

    recorded = events(engine, ev.FORGE_REQUESTS)
    assert len(recorded) == 2
    assert recorded[0].payload == {"forge": "local", "requests": 3, "counted": 1,
                                   "not_modified": 2}
    assert report.forge_requests["counted"] == 1
    assert len(events(engine, ev.FORGE_RATE_LIMITED)) == 2
    assert ev.FORGE_RATE_LIMITED in [e.type for e in RECEIVED]
    status = status_report(engine.ledger)
    assert status["forge_requests"]["today"] == {"ticks": 2, "requests": 6, "counted": 2}
    assert status["forge_requests"]["last_tick"]["counted"] == 1
    # `oxi status` reads the ledger (its config here without the test-only plugins).
    repo.config.write_text((repo.root / ".oxi-test-original.toml").read_text())
    shown = CliRunner().invoke(cli, ["--config", str(repo.config), "status"])
    assert shown.exit_code == 0, shown.output
    assert "forge: local: 3 requests last tick (1 counted), 6 today (2 counted)" in shown.output


def test_an_unknown_auto_merge_fallback_is_a_config_error(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "approved", "n")), engine={
        "auto_merge_fallback": "sometimes"})
    with pytest.raises(ConfigError) as caught:
        load_config(repo.config)
    assert "[engine]" in str(caught.value)
    assert "auto_merge_fallback" in str(caught.value)
    assert "wait" in str(caught.value) and "direct" in str(caught.value)


def test_prune_fetches_the_merges_the_forge_made_on_the_remote(repo_factory) -> None:
    repo = repo_factory(roadmap(("T1-5", "shipped elsewhere", "n"), ("T1-6", "still open", "n")))
    repo.git("fetch", "-q", "origin")
    # The forge squash-merged T1-5 on the remote; this clone has not fetched since.
    other = repo.root.parent / "forge-side"
    run_git(["clone", "-q", str(repo.origin), str(other)], repo.root)
    (other / "notes").mkdir()
    (other / "notes" / "T1-5.txt").write_text("T1-5 was here\n")
    run_git(["add", "-A"], other)
    run_git(["commit", "-qm", "T1-5: shipped elsewhere (#1)"], other)
    run_git(["push", "-q", "origin", "HEAD:main"], other)
    command = ["--config", str(repo.config), "roadmap", "prune"]

    stale = CliRunner().invoke(cli, [*command, "--dry-run", "--no-fetch"])
    fetched = CliRunner().invoke(cli, command)

    assert stale.exit_code == 0 and stale.output == "nothing to prune\n"
    assert fetched.exit_code == 0, fetched.output
    assert fetched.output == "removed T1-5\n"
    text = (repo.root / "roadmap.md").read_text()
    assert "T1-5" not in text and "T1-6" in text


@attrs.define
class LaggingForge(LocalForge):
    """A forge whose list of open pull requests lags behind (a hosted forge's list can: a
    cached or eventually consistent answer), though each pull request still answers."""

    def list_open_prs(self) -> list[PullRequest]:
        return []


def test_a_task_in_review_defers_an_overlapping_task_when_the_forge_does_not_list_its_pr(
    repo_factory,
) -> None:
    first = ("T1-5", "edit the shared file", "touches `shared.txt`")
    repo = repo_factory(roadmap(first), files={"shared.txt": "start\n"})
    found = registry()
    found.kinds["forges"]["lagging"] = Registration("forges", "lagging", LaggingForge, "tests",
                                                   "tests")
    configure(repo, allow_auto_merge=False)  # approved, then waits for a person: in review
    repo.config.write_text(repo.config.read_text().replace(
        '[forges.local]\ntype = "local"\n', '[forges.local]\ntype = "lagging"\n'))
    engine = Engine(load_config(repo.config, registry=found))
    tick(engine)
    task = engine.ledger.task("T1-5")
    assert task is not None and task.status is TaskStatus.IN_REVIEW and task.pr_number

    repo.write("roadmap.md", roadmap(first, ("T1-6", "edit it too", "touches `shared.txt`")))
    report = tick(engine)

    # The engine's own state, not the forge's list, keeps T1-6 back while T1-5 is in review.
    assert report.dispatched == []
    (decision,) = [d for d in report.decisions if d["task"] == "T1-6"]
    assert decision["decision"] != "dispatch" and "T1-5" in decision["reason"]
    later = engine.ledger.task("T1-6")
    assert later is not None and later.status is TaskStatus.PLANNED
