"""oxi.toml's plain values are structured without cattrs exactly as the strict cattrs
converter would, and every value of another shape is left to cattrs (which words the error)."""

from __future__ import annotations

import subprocess
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxi_core.auto_improve.settings import AutoImproveSettings
from oxi_core.config import HookCommand, Structurer
from oxi_core.plain_structure import UNSURE, structure_plain
from oxi_core.policy import Policy
from oxi_core.registry import get_registry

BASE = Path("/srv/project")


def configurable_classes() -> list[type[Any]]:
    """Every attrs class oxi.toml structures: the sections, and every installed plugin's."""
    from oxi_adapter_self import SelfAdapter

    registry = get_registry()
    registry.load_all()
    found: list[type[Any]] = [Policy, HookCommand, AutoImproveSettings, SelfAdapter]
    for kind in registry.kinds:
        for name in registry.names(kind):
            registration = registry.get(kind, name)
            assert registration is not None
            if attrs.has(registration.cls):
                found.append(registration.cls)
    return found


CLASSES = configurable_classes()


def valid(type_: Any) -> st.SearchStrategy[Any] | None:
    """Values TOML could hold for ``type_`` (None: a type this test does not generate)."""
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(max_size=6),
        int: st.integers(-5, 5),
        float: st.floats(-5, 5, allow_nan=False) | st.integers(-5, 5),
        bool: st.booleans(),
        Path: st.text(alphabet="ab/.~", min_size=1, max_size=6),
    }
    if type_ in simple:
        return simple[type_]
    if origin in (typing.Union, __import__("types").UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return valid(inner[0]) if len(inner) == 1 else None
    if origin in (tuple, list) and args and (origin is list or args[-1] is Ellipsis):
        item = valid(args[0])
        return None if item is None else st.lists(item, max_size=3)
    if origin in (dict, Mapping) and len(args) == 2:
        item = valid(args[1])
        return None if item is None else st.dictionaries(st.text(max_size=3), item, max_size=3)
    return None


def kwargs_of(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    attrs.resolve_types(cls)
    fields = {f.alias: valid(f.type) for f in attrs.fields(cls) if f.init}
    return st.fixed_dictionaries({}, optional={k: v for k, v in fields.items() if v is not None})


def fields_of(instance: Any) -> dict[str, Any]:
    return {f.name: getattr(instance, f.name) for f in attrs.fields(type(instance)) if f.init}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_plain_table_structures_as_cattrs_structures_it(cls: type[Any], data: st.DataObject
                                                          ) -> None:
    kwargs = data.draw(kwargs_of(cls))
    structurer = Structurer(BASE)
    plain = structure_plain(kwargs, cls, structurer.resolve_path)
    try:
        expected = structurer.converter.structure(kwargs, cls)
    except Exception:
        assert plain is UNSURE  # a required key missing, or a validator said no: cattrs words it
        return
    if plain is UNSURE:
        return  # cattrs built it: nothing to compare
    assert type(plain) is type(expected)
    assert fields_of(plain) == fields_of(expected)


WRONG = {str: [1, True, ["a"]], int: [True, "1", 1.5, None], float: ["1.0", True],
         bool: [1, "true"], Path: [1, ["a"]]}


@pytest.mark.parametrize("type_", list(WRONG), ids=lambda t: t.__name__)
def test_a_value_of_the_wrong_shape_is_left_to_cattrs(type_: Any) -> None:
    for value in WRONG[type_]:
        assert structure_plain(value, type_, Structurer(BASE).resolve_path) is UNSURE
    assert structure_plain("a b", tuple[str, ...], Structurer(BASE).resolve_path) is UNSURE
    assert structure_plain({"k": 1}, Mapping[str, str], Structurer(BASE).resolve_path) is UNSURE
    assert structure_plain({"argv": ["x"], "nope": 1}, HookCommand,
                           Structurer(BASE).resolve_path) is UNSURE


def test_loading_oxi_toml_imports_neither_cattrs_nor_unused_plugins(tmp_path: Path) -> None:
    """What every command pays: only the classes oxi.toml names are imported, and plain
    values never need cattrs."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "oxi.toml").write_text(
        '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\nkwargs = { repo_root = "." }\n'
        '[engine]\nmax_concurrent = 2\ntask_caps_usd = { opus = 1.5 }\n'
        '[agents.worker]\ntype = "exec"\nkwargs = { argv = ["true"], env = { A = "b" } }\n'
        '[judges.tests]\ntype = "command"\nkwargs = { commands = [["true"]] }\n'
        '[worktree.hooks]\nafter_create = { argv = ["true"], timeout_s = 5 }\n')
    heavy = ("cattrs", "structlog", "httpx", "asyncio", "oxi_codex.adapter",
             "oxi_claude.adapter", "oxi_github.forge", "oxi_grok.target",
             "oxi_openrouter.target", "oxi_newsletter.source", "oxi_x.source")
    code = ("import sys; from pathlib import Path; from oxi_core.config import load_config; "
            f"c = load_config(Path({str(tmp_path / 'oxi.toml')!r})); "
            "assert c.policy.max_concurrent == 2 and c.worker.argv == ('true',); "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
