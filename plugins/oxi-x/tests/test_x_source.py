"""XSource against a real executable X tool (tests/x_tool.py) printing the fixture shapes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from oxi_x.source import XSource

from oxi_core.auto_improve.settings import AutoImproveSettings
from oxi_core.config import load_config
from oxi_core.errors import ConfigError, SourceError
from oxi_core.protocols import Source

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
SINCE_2025 = datetime(2025, 7, 1, tzinfo=UTC)
Tool = Callable[..., tuple[str, ...]]


@pytest.fixture(scope="module")
def tool_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/x_tool.py as an executable file whose #! names this interpreter (a `python3`
    found on PATH may be a version manager's shim, which adds variables of its own)."""
    script = tmp_path_factory.mktemp("bin") / "x-tool"
    lines = (HERE / "x_tool.py").read_text().splitlines(keepends=True)
    script.write_text(f"#!{sys.executable}\n" + "".join(lines[1:]))
    script.chmod(0o755)
    return script


@pytest.fixture
def tool(tool_path: Path) -> Callable[..., tuple[str, ...]]:
    def argv(record: Path, mode: str, fixture: str | None = None) -> tuple[str, ...]:
        argv = [str(tool_path), "--mode", mode, "--record", str(record)]
        return (*argv, "--fixture", str(FIXTURES / fixture)) if fixture else tuple(argv)

    return argv


def runs(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_the_tool_is_a_real_executable(tool_path: Path) -> None:
    assert os.access(tool_path, os.X_OK)
    assert (HERE / "x_tool.py").read_text().startswith("#!/usr/bin/env python3")


def test_without_an_argv_the_source_is_off_and_runs_no_subprocess(
    tmp_path: Path, tool: Tool,
) -> None:
    spawned: list[str] = []
    watching = [True]

    def audit(event: str, _args: tuple[Any, ...]) -> None:
        if watching[0] and event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork"):
            spawned.append(event)

    sys.addaudithook(audit)  # cannot be removed: it stops recording below
    try:
        source = XSource(accounts=("karpathy",))
        assert isinstance(source, Source)
        assert not source.enabled
        assert source.fetch(SINCE_2025) == []
        assert XSource().fetch(SINCE_2025) == []
        assert spawned == []
        # The hook does see the tool when there is one to run.
        XSource(argv=tool(tmp_path / "runs.jsonl", "silent"), accounts=("swyx",)).fetch(
            SINCE_2025)
        assert "subprocess.Popen" in spawned
    finally:
        watching[0] = False


def test_the_tool_gets_the_accounts_and_the_since_timestamp_and_v2_posts_become_candidates(
    tmp_path: Path, tool: Tool,
) -> None:
    record = tmp_path / "runs.jsonl"
    source = XSource(argv=tool(record, "print", "x_api_v2_note_post_constructed.json"),
                     accounts=("@XDevelopers", "karpathy"))
    found = source.fetch(datetime(2025, 7, 18, 12, 0, tzinfo=UTC))

    (run,) = runs(record)
    assert run["rest"] == ["--since", "2025-07-18T12:00:00Z", "XDevelopers", "karpathy"]
    # Not on the curated list, or older than since: left out.
    assert [c.identifier for c in found] == ["https://x.com/i/status/1946312087354875904",
                                             "https://x.com/i/status/1946400000000000000"]
    long_post, quote = found
    assert long_post.source == "x"
    assert long_post.url == "https://x.com/XDevelopers/status/1946312087354875904"
    assert long_post.published_at == datetime(2025, 7, 18, 20, 52, 17, 12000, tzinfo=UTC)
    assert long_post.signal_kind == "x_post"
    assert long_post.target == "example/tool"  # the GitHub repository it links
    # The note's full text, its t.co link expanded; the title is its first line, cut.
    assert long_post.summary.endswith("which only the note carries.")
    assert "https://github.com/example/tool/releases/tag/v2.0.0 and then" in long_post.summary
    assert "t.co" not in long_post.summary
    assert len(long_post.title) == 100 and long_post.title.endswith("…")
    assert long_post.metadata["author"] == "XDevelopers"
    assert long_post.metadata["author_name"] == "Developers"
    assert long_post.metadata["links"] == ["https://github.com/example/tool/releases/tag/v2.0.0"]
    assert long_post.metadata["link_titles"] == ["Release v2.0.0 · example/tool"]
    assert long_post.metadata["metrics"] == {"likes": 30, "reposts": 4, "replies": 1,
                                             "quotes": 0, "views": 1200}
    assert long_post.metadata["shape"] == "x_api_v2"
    assert quote.summary.endswith("(note_post, referenced_posts).")
    assert quote.metadata["referenced"] == "quoted"
    assert quote.target == ""  # links nothing: the post itself


def test_the_official_v2_examples_parse(tmp_path: Path, tool: Tool) -> None:
    record = tmp_path / "runs.jsonl"
    search = XSource(argv=tool(record, "v2-search", "x_api_v2_examples_official.json"),
                     accounts=("pythondev",))
    (post,) = search.fetch(datetime(2024, 1, 1, tzinfo=UTC))
    assert post.title == "Just started learning Python and loving it!"
    assert post.url == "https://x.com/pythondev/status/1234567890123456789"
    assert post.published_at == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert post.metadata["metrics"] == {"likes": 42, "reposts": 5, "replies": 2, "quotes": 1}
    assert search.fetch(datetime(2024, 1, 16, tzinfo=UTC)) == []


def test_scraper_json_lines_become_candidates(tmp_path: Path, tool: Tool) -> None:
    record = tmp_path / "runs.jsonl"
    source = XSource(argv=tool(record, "print", "twscrape_search.jsonl"),
                     accounts=("piloly", "teslascope"))
    found = source.fetch(datetime(2026, 7, 1, tzinfo=UTC))
    assert [c.metadata["author"] for c in found] == ["piloly", "teslascope"]
    piloly, teslascope = found
    assert piloly.identifier == "https://x.com/i/status/2074976613713031490"
    assert piloly.url == "https://x.com/piloly/status/2074976613713031490"
    assert piloly.published_at == datetime(2026, 7, 8, 21, 59, 10, tzinfo=UTC)
    assert piloly.title.startswith("In Europe*, 4.7k Tesla sales were reported")
    assert piloly.metadata["shape"] == "scraper"
    assert piloly.metadata["metrics"]["views"] == 25900
    # The t.co link is replaced by the real one; the card's title goes with it.
    assert "https://teslascope.com/software/2026.20.6.1" in teslascope.summary
    assert "t.co" not in teslascope.summary
    assert teslascope.metadata["links"] == ["https://teslascope.com/software/2026.20.6.1"]
    assert teslascope.target == "teslascope.com/software/2026.20.6.1"
    assert teslascope.metadata["link_titles"] == [
        "2026.20.6.1 Tesla software release notes and statistics - Teslascope"]
    # Only piloly's post is newer than this.
    assert [c.metadata["author"] for c in source.fetch(datetime(2026, 7, 5, tzinfo=UTC))] == [
        "piloly"]


def test_placeholders_shape_the_argv(tmp_path: Path, tool: Tool) -> None:
    record = tmp_path / "runs.jsonl"
    argv = (*tool(record, "silent"), "search", "{query}", "--handles={accounts_csv}",
            "--after", "{since_epoch}", "--day={since_date}", "{accounts}")
    source = XSource(argv=argv, accounts=("karpathy", "swyx"))
    since = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)
    assert source.fetch(since) == []  # no output: nobody posted
    (run,) = runs(record)
    assert run["rest"] == [
        "search", "(from:karpathy OR from:swyx) since:2026-07-01", "--handles=karpathy,swyx",
        "--after", str(int(since.timestamp())), "--day=2026-07-01", "karpathy", "swyx",
    ]


def test_the_tool_gets_an_allow_listed_environment_and_runs_in_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: Tool,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-for-the-x-tool")
    monkeypatch.setenv("X_COOKIES_FILE", "/secure/cookies.json")
    record = tmp_path / "runs.jsonl"
    source = XSource(argv=tool(record, "silent"), accounts=("swyx",),
                     env={"X_BEARER_TOKEN": "bearer-from-config"}, pass_env=("X_COOKIES_FILE",))
    (tmp_path / "conf").mkdir()
    source.bind(_Context(tmp_path / "conf"))
    source.fetch(SINCE_2025)
    (run,) = runs(record)
    assert run["env"]["X_BEARER_TOKEN"] == "bearer-from-config"
    assert run["env"]["X_COOKIES_FILE"] == "/secure/cookies.json"
    assert "ANTHROPIC_API_KEY" not in run["env"]
    assert set(run["env"]) <= {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL",
                               "LC_CTYPE", "TERM", "TZ", "TMPDIR", "X_BEARER_TOKEN",
                               "X_COOKIES_FILE", "OXI_PROCESS_SCOPE"}  # oxi's own marker
    assert run["cwd"] == str(tmp_path / "conf")


def test_a_non_zero_exit_is_a_source_failure_with_the_exit_code_and_no_retry(
    tmp_path: Path, tool: Tool,
) -> None:
    record = tmp_path / "runs.jsonl"
    source = XSource(argv=tool(record, "fail"), accounts=("swyx",))
    with pytest.raises(SourceError) as raised:
        source.fetch(SINCE_2025)
    error = raised.value
    assert error.returncode == 3
    assert error.reason == ("the X tool exited 3: error: 429 Too Many Requests (rate limit "
                            "resets in 900 s)")
    payload = error.payload()
    assert payload["source"] == "x"
    assert payload["exit_code"] == 3
    assert "429" in payload["details"]["stderr_tail"]
    assert len(runs(record)) == 1  # run once, never retried


def test_output_that_is_not_json_is_a_source_failure_with_exit_code_zero(
    tmp_path: Path, tool: Tool,
) -> None:
    record = tmp_path / "runs.jsonl"
    source = XSource(argv=tool(record, "garbage"), accounts=("swyx",))
    with pytest.raises(SourceError) as raised:
        source.fetch(SINCE_2025)
    assert raised.value.returncode == 0
    assert "line 1 is not JSON" in raised.value.reason
    assert raised.value.payload()["details"]["stdout_head"].startswith("<html>")
    assert len(runs(record)) == 1


@pytest.mark.parametrize(("document", "says"), [
    ('{"errors": [{"title": "Unauthorized", "detail": "Unauthorized", "status": 401}]}',
     "the X API answered an error: Unauthorized"),
    ('{"id": "1", "full_text": "a v1.1 tweet"}', "neither an X API v2 post"),
    ("[1, 2]", "expected a post object, got int"),
    ('"just a string"', "expected a JSON object or list, got str"),
])
def test_json_of_an_unknown_shape_is_a_source_failure(
    tmp_path: Path, document: str, says: str, tool: Tool,
) -> None:
    output = tmp_path / "out.json"
    output.write_text(document)
    source = XSource(argv=(*tool(tmp_path / "runs.jsonl", "print"), "--fixture", str(output)),
                     accounts=("swyx",))
    with pytest.raises(SourceError, match=says):
        source.fetch(SINCE_2025)


def test_a_v2_search_that_found_nothing_is_no_posts(tmp_path: Path, tool: Tool) -> None:
    output = tmp_path / "out.json"
    output.write_text('{"meta": {"result_count": 0}}\n')
    source = XSource(argv=(*tool(tmp_path / "runs.jsonl", "print"), "--fixture", str(output)),
                     accounts=("swyx",))
    assert source.fetch(SINCE_2025) == []


def test_a_post_without_a_date_is_dated_by_its_id(tmp_path: Path, tool: Tool) -> None:
    output = tmp_path / "out.jsonl"
    output.write_text('{"data": {"id": "1136048014974423040", "text": "Labs demo"}}\n')
    source = XSource(argv=(*tool(tmp_path / "runs.jsonl", "print"), "--fixture", str(output)),
                     accounts=("TwitterDev",))
    (post,) = source.fetch(datetime(2019, 1, 1, tzinfo=UTC))
    assert post.published_at is not None
    assert post.published_at.date().isoformat() == "2019-06-04"
    assert post.url == "https://x.com/i/status/1136048014974423040"


def test_a_tool_that_hangs_is_killed_at_the_timeout_and_fails(tmp_path: Path, tool: Tool) -> None:
    record = tmp_path / "runs.jsonl"
    source = XSource(argv=tool(record, "hang"), accounts=("swyx",), timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"did not finish within 1 s") as raised:
        source.fetch(SINCE_2025)
    assert time.monotonic() - started < 30
    (run,) = runs(record)
    assert not psutil.pid_exists(run["pid"]) or psutil.Process(run["pid"]).status() == (
        psutil.STATUS_ZOMBIE)
    assert raised.value.returncode is not None and raised.value.returncode < 0  # signalled


def test_a_tool_that_cannot_start_is_a_source_failure(tmp_path: Path) -> None:
    source = XSource(argv=(str(tmp_path / "no-such-tool"),), accounts=("swyx",))
    with pytest.raises(SourceError, match="cannot start the X tool") as raised:
        source.fetch(SINCE_2025)
    assert raised.value.returncode is None


def test_oxi_toml_builds_the_source_and_refuses_what_it_cannot_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool_path: Path,
) -> None:
    monkeypatch.setenv("X_BEARER_TOKEN", "bearer-secret")
    adapter = '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n'
    config = tmp_path / "oxi.toml"
    config.write_text(adapter + f"""
[auto_improve]
accounts = {{ x = ["karpathy", "@swyx"], x_labs = ["AnthropicAI"] }}

[sources.x]
type = "x"

[sources.x.kwargs]
argv = ["{tool_path}", "--mode", "silent"]
timeout_s = 60
env = {{ X_BEARER_TOKEN = {{ env = "X_BEARER_TOKEN" }} }}

[sources.labs]
type = "x"
kwargs = {{ argv = ["{tool_path}", "--mode", "silent"], account_list = "x_labs" }}

[sources.mine]
type = "x"
kwargs = {{ argv = ["{tool_path}", "--mode", "silent"], accounts = ["simonw"] }}

[sources.x_off]
type = "x"
""")
    loaded = load_config(config)
    source = loaded.instance("sources", "x")
    assert isinstance(source, XSource)
    assert source.handles == ("karpathy", "swyx")  # [auto_improve] accounts.x
    assert loaded.instance("sources", "labs").handles == ("AnthropicAI",)
    assert loaded.instance("sources", "mine").handles == ("simonw",)  # its own list wins
    assert source.env == {"X_BEARER_TOKEN": "bearer-secret"}
    assert "bearer-secret" not in repr(source)
    assert not loaded.instance("sources", "x_off").enabled

    for kwargs, key, says in [
        ('{ argv = ["x-tool"], accounts = ["not a handle"] }', "kwargs.accounts",
         "not an X handle"),
        ('{ argv = "x-tool --json", accounts = ["swyx"] }', "kwargs.argv", "expected a list"),
        ('{ argv = ["x-tool"], accounts = ["swyx"], timeout_s = 0 }', "kwargs.timeout_s",
         "must be positive"),
    ]:
        config.write_text(adapter + f'[sources.x]\ntype = "x"\nkwargs = {kwargs}\n')
        with pytest.raises(ConfigError) as raised:
            load_config(config)
        assert raised.value.table == "sources.x"
        assert raised.value.key == key
        assert says in raised.value.message


class _Context:
    def __init__(self, config_dir: Path, **accounts: tuple[str, ...]) -> None:
        self.config_dir = config_dir
        self.auto_improve = AutoImproveSettings(accounts=accounts)


def test_no_accounts_to_follow_fails_the_scan_before_running_the_tool(
    tmp_path: Path, tool: Tool,
) -> None:
    record = tmp_path / "runs.jsonl"
    source = XSource(argv=tool(record, "silent"))
    source.bind(_Context(tmp_path))  # [auto_improve] has no `x` list
    with pytest.raises(SourceError, match=r"no accounts to follow: \[auto_improve\] "
                                          r"accounts.x is empty or missing"):
        source.fetch(SINCE_2025)
    source.bind(_Context(tmp_path, x=("fine", "not a handle")))
    with pytest.raises(SourceError, match="holds 'not a handle', which is not an X handle"):
        source.fetch(SINCE_2025)
    assert runs(record) == []
    source.bind(_Context(tmp_path, x=("swyx",)))
    assert source.fetch(SINCE_2025) == []
    assert runs(record)[0]["rest"] == ["--since", "2025-07-01T00:00:00Z", "swyx"]


def test_fetch_also_works_when_called_inside_a_running_event_loop(
    tmp_path: Path, tool: Tool,
) -> None:
    source = XSource(argv=tool(tmp_path / "runs.jsonl", "print", "twscrape_search.jsonl"),
                     accounts=("piloly",))

    async def scan() -> list[str]:
        return [c.metadata["author"] for c in source.fetch(datetime(2026, 7, 1, tzinfo=UTC))]

    assert asyncio.run(scan()) == ["piloly"]
