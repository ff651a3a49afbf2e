"""Event payloads as the ledger stores them: compact, key-sorted JSON, redacted as JSON.

One payload (``payload_json``) goes through the C encoder inside the stdlib's json; a batch
(``payload_jsons``) through orjson, about seven times faster, whenever orjson writes exactly
what the stdlib would (the same text, but for how a float is written: ``1e-7`` for ``1e-07``,
``0.00006103515625`` for ``6.103515625e-05``, the same number);
any payload it might write otherwise is encoded by the stdlib.
"""

from __future__ import annotations

import enum
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from oxi_core.log import may_hold_secret, redact_text

Payload = Mapping[str, Any] | None


def _default(value: Any) -> Any:
    """What a value JSON cannot hold is stored as: an enum member as its value, anything
    else as its str() (a path, a datetime, a set)."""
    return value.value if isinstance(value, enum.Enum) else str(value)


def jsonable(value: Any) -> Any:
    """A copy of ``value`` that strict JSON can hold: string keys, finite floats, no sets."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    return str(value)


def _make_encoder() -> Callable[[Any], str]:
    """Compact, key-sorted, strict JSON (no NaN), built once.

    ``json.dumps`` with options builds a new encoder on every call, which costs as much as the
    encoding of a small payload. The C encoder that json uses inside is called directly when
    it is there and agrees with the public one on a sample.
    """
    public = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_default,
                              allow_nan=False)
    make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_c_encoder is None:
        return public.encode
    try:
        c_encoder = make_c_encoder(
            None, _default, json.encoder.encode_basestring_ascii, None, ":", ",", True, False,
            False
        )
        sample = {"b": [1, 2.5, None, True, 'é"\\'], "a": {"z": -1e-7, "y": Path("p")}}
        if "".join(c_encoder(sample, 0)) != public.encode(sample):
            return public.encode
    except Exception:  # a Python whose C encoder differs: the public one is always right
        return public.encode

    def encode(payload: Any) -> str:
        return "".join(c_encoder(payload, 0))

    return encode


_ENCODE = _make_encoder()


def encode(payload: Payload) -> str:
    if not payload:
        return "{}"
    try:
        return _ENCODE(payload)
    except (TypeError, ValueError):
        # NaN (SQLite's JSON functions reject it), mixed or tuple keys: store, never drop.
        return json.dumps(jsonable(payload), sort_keys=True, separators=(",", ":"))


def _refuse(_value: Any) -> Any:
    raise TypeError("left to the stdlib encoder")


_EMPTY: Mapping[str, Any] = {}


@functools.cache
def _orjson_dumps() -> tuple[Callable[..., bytes], int]:
    """orjson's encoder and options, imported on the first batch (a process that never
    appends one never pays for the import)."""
    import orjson

    return orjson.dumps, (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                          | orjson.OPT_PASSTHROUGH_DATACLASS)


def encode_many(payloads: Sequence[Payload]) -> list[str]:
    """``encode`` for many payloads, through orjson wherever it writes the same text.

    orjson encodes natively only str (and subclasses, as their text), exact str keys, ints
    within 64 bits, floats, bools, None, lists, tuples, dicts (and subclasses), enums (as
    their value, like ``_default``) and UUIDs (as str() would); anything else reaches
    ``_refuse`` (datetimes and dataclasses too, which orjson would write its own way) and the
    payload goes to ``encode``. So does one whose text holds ``null`` (a NaN or an infinity
    becomes null in orjson, a string in ``encode``), or DEL or anything that is not ASCII
    (``encode`` escapes them): checked once over the whole batch, then row by row only if it
    needs it.
    """
    return _encode_many(payloads)[0]


def _encode_many(payloads: Sequence[Payload]) -> tuple[list[str], bool]:
    """``encode_many``, and whether orjson took every payload (so every key in them is a str:
    it refuses any other)."""
    dumps, option = _orjson_dumps()
    texts: list[str] = []
    refused: set[int] = set()
    for payload in payloads:
        try:
            # Decoded at once: the bytes freed right away make the next one cheap to allocate.
            texts.append(dumps(payload or _EMPTY, default=_refuse, option=option).decode())
        except TypeError:  # orjson.JSONEncodeError
            refused.add(len(texts))
            texts.append(encode(payload))
    if not refused and _same("".join(texts)):
        return texts, True
    return [text if n in refused or _same(text) else encode(payload)
            for n, (text, payload) in enumerate(zip(texts, payloads, strict=True))], not refused


def _same(text: str) -> bool:
    """Whether orjson's text is certainly ``encode``'s: no null (it may have been a NaN) and
    nothing that ``encode`` escapes and orjson does not (beyond ASCII, and DEL)."""
    return text.isascii() and "\x7f" not in text and "null" not in text


def redact_json(text: str) -> str:
    """Redact serialised JSON: one pass catches secrets however deeply they are nested."""
    cleaned = redact_text(text)
    if cleaned == text:
        return text
    try:
        json.loads(cleaned)
    except ValueError:
        # A secret matched across JSON syntax (inside a number, say): keep the row readable.
        return redact_text(json.dumps({"redacted_payload": cleaned}, separators=(",", ":")))
    return cleaned


def payload_json(payload: Payload) -> str:
    """One payload as its stored text."""
    return redact_json(encode(payload))


def payload_jsons(payloads: Sequence[Payload]) -> tuple[list[str], bool]:
    """Many payloads as their stored texts: one quick look at the whole batch for anything
    that may be a secret, then per row only if it needs it. And whether each text is its
    payload's own JSON (nothing redacted, every key a str): a field read from the payload is
    then the stored row's."""
    texts, str_keys = _encode_many(payloads)
    if not may_hold_secret("\n".join(texts)):
        return texts, str_keys
    redacted = [redact_json(text) for text in texts]
    return redacted, str_keys and all(a is b for a, b in zip(redacted, texts, strict=True))
