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
import re
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oxi_core import log
from oxi_core.ledger import Ledger, NewEvent
from oxi_core.ledger import events as ev
from oxi_core.ledger.migrations import SPEND_MODEL_SQL, SPEND_ROLE_SQL, one_spend_key, spend_key
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
    {"accent": "café — ✓ 😀"}, {"ctrl": "".join(map(chr, range(32))) + '"\\'}, {"del": "\x7f"},
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


# A JSON number (and digits inside strings, which both texts hold alike).
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def same_json(batch: str, one: str) -> None:
    """The same JSON value, and the same text but for how a float is written (orjson writes
    1e-7 for 1e-07 and 0.00006103515625 for 6.103515625e-05: the same number)."""
    assert json.loads(batch) == json.loads(one)
    assert NUMBER.sub("0", batch) == NUMBER.sub("0", one)


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
@example([{"small": 6.103515625e-05, "exponent": 1e-07}])  # written apart by the two
@settings(max_examples=200, deadline=None)
def test_a_batch_encodes_any_json_payload_as_one_at_a_time_does(
    payloads: list[dict[str, Any]],
) -> None:
    for batch, one in zip(encode_many(payloads), map(encode, payloads), strict=True):
        same_json(batch, one)


def key() -> str:
    return "sk-ant-api03-" + secrets.token_urlsafe(32)


@pytest.mark.parametrize("separator", ["\t", "\n", "\u00a0"])
def test_a_bearer_token_after_a_tab_or_a_newline_is_redacted_in_the_stored_row(
    ledger: Ledger, separator: str
) -> None:
    # In the stored JSON the tab is the two characters backslash and t.
    token = secrets.token_urlsafe(24)
    payload = {"header": f"Authorization: Bearer{separator}{token}"}
    ledger.append(ev.AGENT_EVENT, payload=payload)
    ledger.append_many([NewEvent(ev.AGENT_EVENT, payload=payload)])

    assert all(token not in text for text in stored(ledger))
    assert [e.payload for e in ledger.events()] == [
        {"header": f"Authorization: {log.REDACTED}"}] * 2


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


# -- the spend per day's role and model, read from the payloads a batch encoded -------------

FIELD_VALUES = st.one_of(
    st.none(), st.text(max_size=3), st.text(min_size=195, max_size=210),
    st.sampled_from(["", "claude", "a\x00b", "é\u2028", "critic", "\ud800"]),
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=2),
)
SPEND_FIELDS = ("role", "model", "agent", "critic", "result", "other")
RESULTS = st.one_of(FIELD_VALUES, st.dictionaries(st.sampled_from(["model", "agent", "x"]),
                                                  FIELD_VALUES, max_size=3))
PAYLOADS = st.dictionaries(st.sampled_from(SPEND_FIELDS), FIELD_VALUES, max_size=5).flatmap(
    lambda fields: st.builds(lambda result: {**fields, **result}, st.one_of(
        st.just({}), RESULTS.map(lambda value: {"result": value}))))


def sql_spend_key(ledger: Ledger, text: str) -> tuple[str, str]:
    role = SPEND_ROLE_SQL.format(p=":payload")
    model = SPEND_MODEL_SQL.format(p=":payload")
    found = ledger.conn.execute(f"SELECT {role}, {model}", {"payload": text}).fetchone()
    return found[0], found[1]


@given(st.lists(PAYLOADS, min_size=1, max_size=6))
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_role_and_model_read_from_a_payload_are_those_sqlite_reads_from_its_json(
    ledger: Ledger, payloads: list[dict[str, Any]]
) -> None:
    for payload in payloads:
        key = spend_key(payload)
        if key is not None:
            assert key == sql_spend_key(ledger, encode(payload)), payload
    texts = encode_many(payloads)
    batch_key = one_spend_key(payloads)
    if batch_key is not None:
        assert {sql_spend_key(ledger, text) for text in texts} == {batch_key}


def spend_by_day(ledger: Ledger) -> dict[tuple[str, str, str, str], tuple[float, int]]:
    return {(day, type_, role, model): (round(usd, 9), n) for day, type_, role, model, usd, n
            in ledger.query("SELECT * FROM spend_by_day WHERE events != 0")}


def recounted(ledger: Ledger) -> dict[tuple[str, str, str, str], tuple[float, int]]:
    role, model = SPEND_ROLE_SQL.format(p="payload"), SPEND_MODEL_SQL.format(p="payload")
    return {(day, type_, r, m): (round(usd, 9), n) for day, type_, r, m, usd, n in ledger.query(
        f"SELECT substr(ts, 1, 10), type, {role}, {model}, sum(cost_usd), count(*) "
        "FROM events WHERE cost_usd != 0 GROUP BY 1, 2, 3, 4")}


def test_batches_add_their_spend_under_the_role_and_model_their_payloads_name(
    ledger: Ledger,
) -> None:
    secret = key()

    def batch(*payloads: dict[str, Any], cost: float = 0.25) -> list[NewEvent]:
        return [NewEvent(ev.DISPATCH_RESULT, cost_usd=cost, payload=p) for p in payloads]

    ledger.append_many(batch({"role": "coder", "result": {"model": "m1"}}) * 3)  # one key
    ledger.append_many(batch({"role": "critic", "critic": "c"}, {"agent": "a"}, {}))  # three
    ledger.append_many(batch({"role": "coder", "model": f"x {secret}"}) * 2)  # redacted
    ledger.append_many(batch({"role": 7, "model": "m"}, {"role": 7, "model": "m"}))  # not text
    ledger.append_many(batch({"role": "r", "when": date(2026, 1, 1)}) * 2)  # refused by orjson
    ledger.append_many(batch({"role": "r", "model": "m2"}) + batch({"role": "free"}, cost=0.0))
    with ledger.transaction() as conn:  # joins a transaction that writes another event first
        conn.execute("INSERT INTO events (ts, type, cost_usd, payload) VALUES (?, ?, 1.5, ?)",
                     (ledger.now_iso(), ev.CRITIC_VERDICT, '{"role": "critic", "model": "q"}'))
        ledger.append_many(batch({"role": "coder", "model": "m3"}))
    # Another program's row (its own connection, no upkeep): the next batch counts it.
    ledger.conn.execute("INSERT INTO events (ts, type, cost_usd, payload) VALUES "
                        "(?, ?, 2.0, '{\"role\": \"elsewhere\"}')",
                        (ledger.now_iso(), ev.DISPATCH_RESULT))
    ledger.append_many(batch({"role": "coder", "model": "m4"}))
    ledger.append_many([*batch({"model": "m5"}),  # two types, one role and model
                        NewEvent(ev.CRITIC_VERDICT, cost_usd=0.125, payload={"model": "m5"})])

    kept = spend_by_day(ledger)
    assert kept == recounted(ledger)
    assert ledger.query("SELECT hour, round(cost_usd, 9) FROM spend_by_hour ORDER BY 1") == \
        ledger.query("SELECT substr(ts, 1, 13), round(sum(cost_usd), 9) FROM events "
                     "WHERE cost_usd != 0 GROUP BY 1 ORDER BY 1")
    day = ledger.now_iso()[:10]
    assert kept[(day, ev.DISPATCH_RESULT, "coder", "m1")] == (0.75, 3)
    assert kept[(day, ev.DISPATCH_RESULT, "elsewhere", "")] == (2.0, 1)
    assert kept[(day, ev.CRITIC_VERDICT, "critic", "q")] == (1.5, 1)
    assert kept[(day, ev.DISPATCH_RESULT, "coder", f"x {log.REDACTED}")] == (0.5, 2)
    assert kept[(day, ev.CRITIC_VERDICT, "", "m5")] == (0.125, 1)
    assert all(secret not in repr(k) for k in kept)


def test_a_batch_whose_roles_and_models_the_ledger_knows_is_counted_without_its_json(
    ledger: Ledger,
) -> None:
    statements: list[str] = []
    ledger.append(ev.TICK_FINISHED)
    ledger.conn.set_trace_callback(statements.append)
    ledger.append_many(NewEvent(ev.DISPATCH_RESULT, cost_usd=0.5,
                                payload={"role": "coder", "result": {"model": "m"}, "n": n})
                       for n in range(10))
    ledger.conn.set_trace_callback(None)

    assert any("INSERT INTO spend_by_day" in sql for sql in statements)
    assert not [sql for sql in statements if "json_" in sql]
    assert spend_by_day(ledger) == recounted(ledger) == {
        (ledger.now_iso()[:10], ev.DISPATCH_RESULT, "coder", "m"): (5.0, 10)}


@pytest.mark.parametrize("how", ["known", "read from the rows"])
def test_the_spend_upkeep_reads_only_the_events_its_transaction_wrote(
    ledger: Ledger, how: str
) -> None:
    ledger.append_many(NewEvent(ev.DISPATCH_RESULT, cost_usd=0.5) for _ in range(50))
    statements: list[str] = []
    ledger.conn.set_trace_callback(statements.append)
    payload = {"role": "coder"} if how == "known" else {"role": ["not", "text"]}
    ledger.append_many([NewEvent(ev.DISPATCH_RESULT, cost_usd=0.5, payload=payload)] * 3)
    ledger.conn.set_trace_callback(None)

    upkeep = [sql for sql in statements if "cost_usd != 0" in sql]
    assert upkeep
    for sql in upkeep:  # the traced SQL has its parameters inlined
        plan = " ".join(str(row[-1]) for row in ledger.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "SCAN events" not in plan, (sql, plan)
        assert "INTEGER PRIMARY KEY (rowid>?)" in plan, (sql, plan)
