"""Event payloads as stored: a batch (orjson) is stored as one payload at a time (the stdlib's
C encoder) stores it, and its secrets are redacted however they hide.

Real SQLite files; the stored text is read back with SQL.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import math
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oxi_core import log
from oxi_core.ledger import Ledger, NewEvent
from oxi_core.ledger import events as ev
from oxi_core.ledger.payloads import encode, encode_many


@pytest.fixture(autouse=True)
def _isolated_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # register_secret is process-wide; give each test its own set and restore it afterwards.
    monkeypatch.setattr(log, "_known_secrets", ())


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / ".oxi" / "oxi.db") as opened:
        yield opened


def stored(ledger: Ledger) -> list[str]:
    return [row[0] for row in ledger.conn.execute("SELECT payload FROM events ORDER BY id")]


class Colour(enum.Enum):
    RED = "red"


class Level(enum.StrEnum):
    HIGH = "high"


class Rank(enum.IntEnum):
    FIRST = 1


@dataclasses.dataclass
class Point:
    x: int


class Ratio(float):
    pass


Pair = collections.namedtuple("Pair", "left right")

# Every kind of value a payload may hold, each alone: the ones orjson writes as the stdlib
# does, and the ones the batch leaves to the stdlib (NaN, infinities, text that is not ASCII,
# lone surrogates, ints past 64 bits, keys that are not str, datetimes, dataclasses, sets,
# paths, named tuples, float subclasses, nesting deeper than orjson goes).
ODD_PAYLOADS: list[dict[Any, Any]] = [
    {},
    {"text": "plain", "n": 3, "f": 2.5, "tiny": 1e-7, "huge": 1e22, "neg": -0.0},
    {"none": None, "t": True, "list": [1, [2, {"z": 1, "a": 2}]], "tuple": (1, "x")},
    {"nan": math.nan}, {"inf": math.inf, "minus": -math.inf},
    {"accent": "café — ✓ 😀", "ctrl": "".join(map(chr, range(32))) + '"\\\x7f'},
    {"surrogate": "\ud800"}, {"big": 2**70}, {"limit": 2**64 - 1, "low": -(2**63)},
    {1: "int key", "s": "str key"}, {Level.HIGH: "StrEnum key"},
    {"enum": Colour.RED, "strenum": Level.HIGH, "intenum": Rank.FIRST},
    {"when": datetime(2026, 11, 20, 9, 0, tzinfo=UTC), "day": date(2026, 11, 20)},
    {"point": Point(1), "set": {3}, "path": Path("a/b"), "id": uuid.UUID(int=7)},
    {"pair": Pair(1, 2), "ratio": Ratio(0.5), "bytes": b"x"},
    {"ordered": collections.OrderedDict([("b", 1), ("a", 2)])},
    {"keys": {"b": 1, "B": 2, "a": 3, "é": 4}},
]


def nested(depth: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        payload = {"a": payload}
    return payload


def same_json(batch: str, one: str) -> None:
    """The same JSON value, and the same text but for a float's exponent (1e-7, 1e-07)."""
    assert json.loads(batch) == json.loads(one)
    assert batch.replace("e-0", "e-") == one.replace("e-0", "e-")


@pytest.mark.parametrize("payload", [*ODD_PAYLOADS, nested(300)],
                         ids=[*map(str, range(len(ODD_PAYLOADS))), "deep"])
def test_a_batch_stores_each_payload_as_a_single_append_does(
    ledger: Ledger, payload: dict[Any, Any]
) -> None:
    ledger.append(ev.AGENT_EVENT, payload=payload)
    ledger.append_many([NewEvent(ev.AGENT_EVENT, payload=payload)])

    one, batch = stored(ledger)
    same_json(batch, one)
    assert ledger.conn.execute("SELECT min(json_valid(payload)) FROM events").fetchone()[0] == 1


def test_one_odd_payload_leaves_the_rest_of_its_batch_as_it_would_be(ledger: Ledger) -> None:
    batch = [{"n": n, "text": f"line {n}"} for n in range(50)] + ODD_PAYLOADS
    ledger.append_many(NewEvent(ev.AGENT_EVENT, payload=p) for p in batch)

    assert len(stored(ledger)) == len(batch)
    for text, payload in zip(stored(ledger), batch, strict=True):
        same_json(text, encode(payload))


def test_an_enum_member_is_stored_as_its_value_whichever_path_writes_it(ledger: Ledger) -> None:
    payload = {"colour": Colour.RED, "level": Level.HIGH, "rank": Rank.FIRST}
    ledger.append(ev.AGENT_EVENT, payload=payload)
    ledger.append_many([NewEvent(ev.AGENT_EVENT, payload=payload)])
    # Beside a NaN the batch's payload is left to the stdlib: still the value.
    ledger.append_many([NewEvent(ev.AGENT_EVENT, payload={**payload, "nan": math.nan})])

    expected = {"colour": "red", "level": "high", "rank": 1}
    assert [e.payload for e in ledger.events()] == [expected, expected, {**expected,
                                                                         "nan": "nan"}]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.lists(st.dictionaries(st.text(), JSON_VALUES, max_size=5), max_size=8))
@settings(max_examples=200, deadline=None)
def test_a_batch_encodes_any_json_payload_as_one_at_a_time_does(
    payloads: list[dict[str, Any]],
) -> None:
    for batch, one in zip(encode_many(payloads), map(encode, payloads), strict=True):
        same_json(batch, one)


def key() -> str:
    return "sk-ant-api03-" + secrets.token_urlsafe(32)


@pytest.mark.parametrize("where", ["nested", "key", "long string", "not ascii", "beside null",
                                   "beside NaN", "refused by orjson"])
def test_a_secret_in_a_batch_is_redacted_wherever_it_hides(ledger: Ledger, where: str) -> None:
    secret = key()
    payload: dict[Any, Any] = {
        "nested": {"a": [{"b": [1, f"x {secret} y"]}]},
        "key": {f"env {secret}": "value"},
        "long string": {"log": "x" * 100_000 + secret + "y" * 100_000},
        "not ascii": {"text": f"déjà vu: {secret} ✓"},
        "beside null": {"text": secret, "pr": None},
        "beside NaN": {"text": secret, "ratio": math.nan},
        "refused by orjson": {"text": secret, "when": datetime(2026, 1, 1, tzinfo=UTC)},
    }[where]
    ledger.append_many([NewEvent(ev.AGENT_EVENT, payload={"n": n}) for n in range(20)]
                       + [NewEvent(ev.AGENT_EVENT, payload=payload)])

    texts = stored(ledger)
    assert all(secret not in text for text in texts)
    assert log.REDACTED in texts[-1]
    assert [json.loads(text) for text in texts[:20]] == [{"n": n} for n in range(20)]


def test_a_secret_repeated_in_every_payload_of_a_batch_is_redacted_in_each(
    ledger: Ledger,
) -> None:
    secret = "ghp_" + secrets.token_hex(18)
    registered = "hunter-" + secrets.token_hex(8)
    log.register_secret(registered)
    payload = {"env": {"GH": secret}, "note": f"pass={registered}"}
    ledger.append_many([NewEvent(ev.AGENT_EVENT, payload=payload)] * 100)

    assert [e.payload for e in ledger.events()] == [
        {"env": {"GH": log.REDACTED}, "note": f"pass={log.REDACTED}"}] * 100
