"""Structuring oxi.toml values of plain types without cattrs.

Nearly every setting is a string, a number, a boolean, a path, or a list or table of those;
cattrs (plus building its converter and generating a function per class) costs more than the
rest of loading oxi.toml, on every command. These types are structured here exactly as the
strict converter of config.py would; anything else, and any value of the wrong shape, is
``UNSURE``, and the caller lets cattrs do it (and word the error).
"""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs


class _Unsure:
    def __repr__(self) -> str:
        return "UNSURE"


UNSURE: Any = _Unsure()

_MAPPINGS = (dict, collections.abc.Mapping)
_NONE = type(None)


def structure_plain(value: Any, type_: Any, resolve_path: Callable[[str], Path]) -> Any:
    """``value`` as ``type_``, or UNSURE when this is not a plain case that is certainly valid.

    ``resolve_path`` makes a path string absolute (relative to oxi.toml's folder)."""
    if type_ is str:
        return value if isinstance(value, str) else UNSURE
    if type_ is bool:
        return value if isinstance(value, bool) else UNSURE
    if type_ is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else UNSURE
    if type_ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return UNSURE
        return float(value)
    if type_ is Path:
        if not isinstance(value, str):
            return UNSURE
        try:
            return resolve_path(value)
        except Exception:  # "~nobody/x": let cattrs say so
            return UNSURE
    if type_ is Any:
        return value
    if isinstance(type_, type) and attrs.has(type_):
        return _attrs_instance(value, type_, resolve_path)
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if origin in (typing.Union, types.UnionType):
        if _NONE not in args or len(args) != 2:
            return UNSURE
        if value is None:
            return None
        return structure_plain(value, args[0] if args[1] is _NONE else args[1], resolve_path)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            return UNSURE
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return UNSURE  # a fixed-length tuple: cattrs checks its length
        items = [structure_plain(item, args[0], resolve_path) for item in value]
        if any(item is UNSURE for item in items):
            return UNSURE
        return tuple(items) if origin is tuple else items
    if origin in _MAPPINGS:
        if not isinstance(value, dict) or len(args) != 2 or args[0] is not str:
            return UNSURE
        structured = {}
        for key, item in value.items():
            converted = structure_plain(item, args[1], resolve_path)
            if not isinstance(key, str) or converted is UNSURE:
                return UNSURE
            structured[key] = converted
        return structured
    return UNSURE


def _attrs_instance(value: Any, cls: type[Any], resolve_path: Callable[[str], Path]) -> Any:
    """An attrs class from a table whose every key is a field and every value plain; its
    __init__ runs the validators (a failing one: UNSURE, for cattrs to report)."""
    if not isinstance(value, Mapping):
        return UNSURE
    try:
        attrs.resolve_types(cls)
    except NameError:
        return UNSURE
    fields = {field.alias: field for field in attrs.fields(cls) if field.init}
    arguments: dict[str, Any] = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            return UNSURE
        converted = structure_plain(item, field.type, resolve_path)
        if converted is UNSURE:
            return UNSURE
        arguments[key] = converted
    try:
        return cls(**arguments)
    except Exception:
        return UNSURE
