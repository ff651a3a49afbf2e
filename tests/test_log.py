"""structlog set-up: JSON lines off a terminal, console on one, and no secret in either."""

from __future__ import annotations

import collections
import io
import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from oxi_core import log
from oxi_core.config import resolve_env


@pytest.fixture(autouse=True)
def _fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # register_secret and structlog.configure are process-wide: isolate and restore both.
    monkeypatch.setattr(log, "_known_secrets", ())
    yield
    structlog.reset_defaults()


def emit(json_lines: bool | None, *args: Any, **kwargs: Any) -> str:
    stream = io.StringIO()
    log.configure(stream=stream, json_lines=json_lines)
    log.get_logger().info(*args, **kwargs)
    return stream.getvalue()


def secret_from_env(monkeypatch: pytest.MonkeyPatch, value: str) -> str:
    """Read ``value`` the way oxi.toml's ``{ env = "NAME" }`` does."""
    monkeypatch.setenv("OXI_TEST_SECRET", value)
    resolved = resolve_env(
        {"env": "OXI_TEST_SECRET"}, file="oxi.toml", table="agents.claude", key="api_key"
    )
    assert resolved == value
    return str(resolved)


# -- rendering ------------------------------------------------------------------------------


def test_json_lines_when_the_stream_is_not_a_tty() -> None:
    stream = io.StringIO()
    log.configure(stream=stream)
    logger = log.get_logger()
    logger.info("tick started", tick=3)
    logger.warning("gate deferred", task_id="T1-2", reasons=["budget"])

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["event"], r["level"]) for r in lines] == [
        ("tick started", "info"),
        ("gate deferred", "warning"),
    ]
    assert lines[0]["tick"] == 3
    assert lines[1]["reasons"] == ["budget"]
    assert all(r["timestamp"].endswith("Z") for r in lines)


def test_console_rendering_when_json_lines_is_false() -> None:
    out = emit(False, "tick started", tick=3)

    assert "tick started" in out
    assert "tick=3" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_console_rendering_with_colours_on_a_real_terminal() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        log.configure(stream=terminal)
        log.get_logger().info("tick started", tick=3)
        terminal.flush()
        out = os.read(leader, 65536).decode()
    os.close(leader)

    assert "tick started" in out
    assert "\x1b[" in out  # ANSI colours: console output, not JSON
    assert not out.lstrip().startswith("{")


def test_lines_below_the_configured_level_are_dropped() -> None:
    stream = io.StringIO()
    log.configure(stream=stream, json_lines=True, level="warning")
    log.get_logger().info("quiet")
    log.get_logger().error("loud")

    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


def test_a_named_tuple_is_logged_not_crashed_on() -> None:
    Usage = collections.namedtuple("Usage", "tokens_in tokens_out")

    assert json.loads(emit(True, "usage", usage=Usage(10, 5)))["usage"] == [10, 5]
    assert "Usage(tokens_in=10, tokens_out=5)" in emit(False, "usage", usage=Usage(10, 5))


# -- acceptance: secrets never reach a log line ---------------------------------------------


class Credentials:
    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"Credentials(key={self.key!r})"


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "console"])
def test_a_secret_from_env_never_appears_in_log_output_however_it_is_nested(
    monkeypatch: pytest.MonkeyPatch, json_lines: bool
) -> None:
    secret = secret_from_env(monkeypatch, "hunter2-" + secrets.token_hex(12))
    stream = io.StringIO()
    log.configure(stream=stream, json_lines=json_lines)
    logger = log.get_logger()

    logger.info(f"calling the gateway with {secret}")
    logger.info(
        "dispatch",
        argv=["claude", "--key", secret],
        env={"HOME": "/root", "ANTHROPIC_API_KEY": secret, "nested": {"deep": [f"x{secret}y"]}},
        pair=("a", secret),
        tags={secret},
        **{secret: "as a key"},
    )
    logger.info("objects", creds=Credentials(secret), error=ValueError(f"bad key {secret}"))
    try:
        raise RuntimeError(f"gateway refused {secret}")
    except RuntimeError:
        logger.exception("dispatch failed")

    out = stream.getvalue()
    assert secret not in out
    assert out.count(log.REDACTED) >= 8
    assert "gateway refused" in out  # the message survives, only the secret goes
    if json_lines:
        records = [json.loads(line) for line in out.splitlines()]
        assert len(records) == 4
        assert secret not in json.dumps(records, ensure_ascii=False)  # nor after decoding


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "console"])
@pytest.mark.parametrize(
    "secret", ["pässwört-" + "x" * 6, 'quo"te\\back-slash'], ids=["non-ascii", "quote"]
)
def test_a_secret_that_renderers_escape_is_still_redacted(
    monkeypatch: pytest.MonkeyPatch, json_lines: bool, secret: str
) -> None:
    secret_from_env(monkeypatch, secret)
    out = emit(json_lines, "dispatch", value=secret, listed=[secret], obj=Credentials(secret))

    for spelling in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]):
        assert spelling not in out
    if json_lines:
        assert secret not in json.dumps(json.loads(out), ensure_ascii=False)


def test_a_short_secret_inside_a_number_leaves_a_valid_json_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret_from_env(monkeypatch, "4242")
    out = emit(True, "probe", port=14242)

    assert "4242" not in out
    assert json.loads(out)  # still one valid JSON line


KEY_SHAPES = {
    "anthropic": "sk-ant-api03-" + secrets.token_hex(24),
    "openai-project": "sk-proj-" + secrets.token_hex(24),
    "openai": "sk-" + secrets.token_hex(24),
    "openrouter": "sk-or-v1-" + secrets.token_hex(32),
    "github": "ghp_" + secrets.token_hex(18),
    "github-fine-grained": "github_pat_" + secrets.token_hex(30),
    "xai": "xai-" + secrets.token_hex(40),
    "aws": "AKIA" + secrets.token_hex(8).upper(),
}


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "console"])
@pytest.mark.parametrize("key", list(KEY_SHAPES.values()), ids=list(KEY_SHAPES))
def test_api_key_shapes_are_redacted_wherever_they_appear(json_lines: bool, key: str) -> None:
    out = emit(
        json_lines,
        f"agent said {key}",
        stderr=f"401 for key {key}\n",
        argv=["x", key],
        env={"nested": [{"value": key}]},
    )

    assert key not in out
    assert out.count(log.REDACTED) == 4


@pytest.mark.parametrize("padding", [0, 40, 300], ids=["bare", "in a line", "in a long text"])
@pytest.mark.parametrize("key", [*KEY_SHAPES.values(), "bEaReR " + "t" * 20],
                         ids=[*KEY_SHAPES, "bearer"])
def test_every_key_shape_is_found_in_a_short_text_and_a_long_one(key: str, padding: int) -> None:
    # may_hold_secret looks at a long text (a batch of ledger payloads) another way.
    text = f"{'~' * padding} {key} {'~' * padding}"
    assert log.may_hold_secret(text)
    assert key not in log.redact_text(text)


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "console"])
def test_a_bearer_token_is_redacted(json_lines: bool) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9." + secrets.token_urlsafe(24)
    out = emit(
        json_lines,
        "request",
        line=f"Authorization: Bearer {token}",
        curl=["curl", "-H", f"authorization: bearer {token}"],
        # Rendered escaped (JSON, repr): the tab and the newline are two characters there.
        tabbed=f"Authorization: Bearer\t{token}",
        wrapped=f"bearer\n{token}",
    )

    assert token not in out
    assert out.count(log.REDACTED) == 4


def test_a_value_under_a_secret_sounding_key_is_redacted_whatever_its_shape() -> None:
    record = json.loads(
        emit(
            True,
            "config",
            api_key="plain-looking",
            github_token="abc",
            password="pw",
            tokens_in=120,
            model="claude-sonnet-4-5",
        )
    )

    assert record["api_key"] == record["github_token"] == record["password"] == log.REDACTED
    assert (record["tokens_in"], record["model"]) == (120, "claude-sonnet-4-5")


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "console"])
def test_a_branch_slug_holding_sk_dash_is_not_taken_for_a_key(json_lines: bool) -> None:
    branch = "oxi/T1-7-task-state-machine-in-one-module"
    out = emit(json_lines, f"pushed {branch}", branch=branch, argv=["git", "push", branch])

    assert out.count(branch) == 3
    assert log.REDACTED not in out


def test_ordinary_text_is_left_alone() -> None:
    record = json.loads(
        emit(True, "merged", branch="oxi/T1-3-sk-learn", sha="4f2a9c1", note="task-ask-later")
    )
    assert (record["branch"], record["sha"], record["note"]) == (
        "oxi/T1-3-sk-learn",
        "4f2a9c1",
        "task-ask-later",
    )


FRAGMENTS = [
    "sk-",
    "ant-",
    "proj-",
    "or-v1-",
    "xai-",
    "gh",
    "p",
    "o",
    "u",
    "s",
    "r",
    "_",
    "github_pat_",
    "AKIA",
    "Bearer",
    "bEaReR",
    "BEARER",
    " ",
    "\t",
    "\n",
    "Q" * 8,
    "a1" * 5,
    "Z9",
    "-",
    ".",
    "é",
    '"',
    "\\",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join),
       st.sampled_from(["", "~" * 300]))
def test_the_fast_pre_check_never_skips_text_the_key_shapes_match(text: str, long: str) -> None:
    # redact_text() skips its regex when may_hold_secret() says no: that must never hide a key.
    # A long text (a batch of payloads) is looked at another way than a short one.
    text = f"{long}{text}{long}"
    if log._KEY_SHAPES.search(text):
        assert log.may_hold_secret(text)
        assert log.redact_text(text) != text
