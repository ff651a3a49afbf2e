"""hookspecs.md documents every hook with its exact signature, and its examples run."""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import click
import pluggy
import pytest
from click.testing import CliRunner

from oxi_core import hookspecs, protocols
from oxi_core.hookspecs import KIND_HOOKS, hookspec
from oxi_core.plugins import LoadedPlugins
from oxi_core.registry import build_registry

DOC = Path(__file__).resolve().parents[1] / "hookspecs.md"

# A hook heading: "### `name(params) -> returns`".
HOOK_HEADING = re.compile(
    r"^#{2,6}\s+`(?P<signature>(?P<name>\w+)\(.*\)\s*->\s*.+?)`\s*$", re.MULTILINE
)
ANY_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)
REGISTERED_PROTOCOL = re.compile(r"^Callable\[\[str, type\[(?P<protocol>\w+)\] \| str\], None\]$")
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


# -- the checker ----------------------------------------------------------------------------


def _annotation(annotation: Any) -> str:
    # hookspecs.py and protocols.py use `from __future__ import annotations`: annotations are
    # the source text already.
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def render_signature(name: str, function: Callable[..., Any]) -> str:
    """``name(param: Type, *, key: Type = default) -> Return`` as the source spells it."""
    parts: list[str] = []
    star_written = False
    parameters = list(inspect.signature(function).parameters.values())
    for index, parameter in enumerate(parameters):
        if parameter.kind is parameter.KEYWORD_ONLY and not star_written:
            parts.append("*")
            star_written = True
        text = parameter.name
        if parameter.kind is parameter.VAR_POSITIONAL:
            text = "*" + text
            star_written = True
        elif parameter.kind is parameter.VAR_KEYWORD:
            text = "**" + text
        if parameter.annotation is not parameter.empty:
            text += f": {_annotation(parameter.annotation)}"
        if parameter.default is not parameter.empty:
            text += f" = {parameter.default!r}"
        parts.append(text)
        last_positional_only = parameter.kind is parameter.POSITIONAL_ONLY and (
            index + 1 == len(parameters) or parameters[index + 1].kind is not parameter.kind
        )
        if last_positional_only:
            parts.append("/")
    returns = inspect.signature(function).return_annotation
    arrow = "" if returns is inspect.Signature.empty else f" -> {_annotation(returns)}"
    return f"{name}({', '.join(parts)}){arrow}"


def hook_specs(manager: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Every hook the manager has a spec for, by name."""
    found: dict[str, Callable[..., Any]] = {}
    for name in dir(manager.hook):
        spec = getattr(getattr(manager.hook, name), "spec", None)
        if spec is not None:
            found[name] = spec.function
    return found


def registered_protocol(hook: Callable[..., Any]) -> type | None:
    """The protocol a ``register_*`` hook's classes implement, from its annotation."""
    first = next(iter(inspect.signature(hook).parameters.values()))
    found = REGISTERED_PROTOCOL.match(_annotation(first.annotation))
    return getattr(protocols, found["protocol"]) if found else None


def protocol_method_lines(protocol: type) -> list[str]:
    """``[async ]def name(self, ...) -> Return`` for each public method of a protocol."""
    return [
        ("async def " if inspect.iscoroutinefunction(member) else "def ")
        + render_signature(name, member)
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    ]


def sections(doc: str) -> dict[str, list[str]]:
    """Each hook heading's text up to the next heading of any level, by hook name."""
    found: dict[str, list[str]] = {}
    for heading in HOOK_HEADING.finditer(doc):
        following = ANY_HEADING.search(doc, heading.end())
        body = doc[heading.end() : following.start() if following else len(doc)]
        found.setdefault(heading["name"], []).append(heading["signature"] + "\n" + body)
    return found


def doc_problems(doc: str, specs: Mapping[str, Callable[..., Any]]) -> list[str]:
    """What hookspecs.md gets wrong about these hook specs; empty when it is complete."""
    documented = sections(doc)
    problems = []
    for name, function in sorted(specs.items()):
        expected = render_signature(name, function)
        found = documented.get(name, [])
        if not found:
            problems.append(f"{name} is not documented; add a heading `{expected}`")
            continue
        if len(found) > 1:
            problems.append(f"{name} is documented {len(found)} times")
        signature, _, body = found[0].partition("\n")
        if signature != expected:
            problems.append(
                f"{name} is documented as `{signature}`; hookspecs.py says `{expected}`"
            )
        protocol = registered_protocol(function)
        if protocol is not None:
            problems.extend(
                f"{name}: the {protocol.__name__} method `{line}` is missing or differs"
                for line in protocol_method_lines(protocol)
                if line not in body
            )
    problems.extend(
        f"{name} is documented but is not a hook" for name in sorted(set(documented) - set(specs))
    )
    return problems


# -- hookspecs.md ---------------------------------------------------------------------------


@pytest.fixture
def manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("oxi")
    manager.add_hookspecs(hookspecs)
    return manager


def test_every_hook_is_documented_with_its_exact_signature(manager: pluggy.PluginManager) -> None:
    specs = hook_specs(manager)

    assert set(KIND_HOOKS.values()) | {"register_commands"} <= set(specs)
    assert doc_problems(DOC.read_text(encoding="utf-8"), specs) == []


def test_the_checker_reports_a_drifted_signature_an_undocumented_hook_and_a_stale_protocol(
    manager: pluggy.PluginManager,
) -> None:
    doc = DOC.read_text(encoding="utf-8")
    drifted = doc.replace(
        "`register_agents(register: Callable[[str, type[AgenticAdapter] | str], None]) -> None`",
        "`register_agents(register: Callable[[str, type[Any]], None]) -> None`",
    ).replace("def get_pr(self, number: int) -> PullRequest", "def get_pr(self, number: str)")
    assert drifted != doc

    @hookspec
    def register_widgets(register: Callable[[str, type[Any]], None]) -> None:
        """A hook added to hookspecs.py but not to hookspecs.md."""

    new_specs = types.ModuleType("new_specs")
    new_specs.register_widgets = register_widgets  # type: ignore[attr-defined]
    manager.add_hookspecs(new_specs)
    problems = doc_problems(drifted, hook_specs(manager))

    assert problems == [
        "register_agents is documented as `register_agents(register: Callable[[str, type[Any]], "
        "None]) -> None`; hookspecs.py says `register_agents(register: Callable[[str, "
        "type[AgenticAdapter] | str], None]) -> None`",
        "register_forges: the Forge method `def get_pr(self, number: int) -> PullRequest` is "
        "missing or differs",
        "register_widgets is not documented; add a heading `register_widgets(register: "
        "Callable[[str, type[Any]], None]) -> None`",
    ]


def test_the_checker_reports_a_documented_hook_that_no_longer_exists() -> None:
    doc = ("### `register_agents(register: Callable[[str, type[AgenticAdapter] | str], None]) "
           "-> None`\n")

    assert doc_problems(doc, {}) == ["register_agents is documented but is not a hook"]


def test_keyword_only_and_variadic_parameters_render_as_the_source_spells_them() -> None:
    assert protocol_method_lines(protocols.InferenceTarget) == [
        "async def complete(self, messages: Sequence[Mapping[str, Any]], model: str, "
        "max_tokens: int, **kwargs: Any) -> InferenceResult"
    ]
    assert protocol_method_lines(protocols.Forge)[0] == (
        "def open_pr(self, *, task_id: str, branch: str, title: str, body: str) -> PullRequest"
    )


# -- the examples ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples() -> pluggy.PluginManager:
    """Every python block of hookspecs.md with a @hookimpl, each run as a module of its own."""
    manager = pluggy.PluginManager("oxi")
    manager.add_hookspecs(hookspecs)
    doc = DOC.read_text(encoding="utf-8")
    for number, block in enumerate(PYTHON_BLOCK.finditer(doc), start=1):
        if "@hookimpl" in block["code"]:
            line = doc.count("\n", 0, block.start()) + 2
            module = types.ModuleType(f"hookspecs_md_example_{number}")
            exec(compile(block["code"], f"{DOC}:{line}", "exec"), module.__dict__)
            manager.register(module, name=module.__name__)
    manager.check_pending()
    return manager


def test_the_examples_register_a_class_for_every_kind_that_implements_its_protocol(
    examples: pluggy.PluginManager,
) -> None:
    registry = build_registry(LoadedPlugins(examples))

    assert registry.failures == []
    for kind, hook_name in KIND_HOOKS.items():
        protocol = registered_protocol(getattr(hookspecs, hook_name))
        assert protocol is not None, hook_name
        methods = [
            name
            for name, member in vars(protocol).items()
            if inspect.isfunction(member) and not name.startswith("_")
        ]
        assert registry.kinds[kind], f"no example registers {kind}"
        for registration in registry.kinds[kind].values():
            assert attrs.has(registration.cls), registration
            assert all(callable(getattr(registration.cls, m, None)) for m in methods), (
                f"{registration.cls.__name__} does not implement {protocol.__name__}"
            )


def test_the_example_command_runs_under_the_oxi_group(examples: pluggy.PluginManager) -> None:
    group = click.Group(name="oxi")
    examples.hook.register_commands(cli=group)

    result = CliRunner().invoke(group, ["hello", "oxi"])

    assert result.exit_code == 0, result.output
    assert result.output == "hello, oxi\n"


# -- what plugins receive, and what reaches notifiers ---------------------------------------


def _block(doc: str, start: str, end: str) -> str:
    return doc[doc.index(start): doc.index(end)]


def test_every_type_a_plugin_receives_is_documented_field_by_field() -> None:
    import enum
    import importlib

    block = _block(DOC.read_text(encoding="utf-8"), "<!-- types:", "<!-- end types -->")
    documented: dict[str, list[str]] = {}
    texts: dict[str, str] = {}
    for section in re.split(r"^### ", block, flags=re.MULTILINE)[1:]:
        dotted = re.match(r"`([\w.]+)`", section)
        assert dotted is not None, section[:80]
        documented[dotted[1]] = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
        texts[dotted[1]] = section
    received = {"oxi_core.models.Event", "oxi_core.tasks.Task",
                "oxi_core.engine.state.EngineState", "oxi_core.models.GateDecision",
                "oxi_core.models.Verdict", "oxi_core.models.PullRequest",
                "oxi_core.models.PullRequestSubject", "oxi_core.models.Candidate",
                "oxi_core.models.InferenceResult", "oxi_core.agentic.types.DispatchRequest",
                "oxi_core.agentic.types.DispatchResult", "oxi_core.agentic.types.Usage",
                "oxi_core.agentic.types.CanonicalEvent", "oxi_core.policy.RepoPaths"}
    assert set(documented) == received
    for dotted, fields in documented.items():
        module, _, name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert fields == [f.name for f in attrs.fields(cls)], dotted
        # Every value of an enum field is named in its row.
        for field in attrs.fields(cls):
            kind = field.type if isinstance(field.type, type) else None
            if kind is None and isinstance(field.type, str):
                for source in (importlib.import_module("oxi_core.models"),
                               importlib.import_module("oxi_core.tasks"),
                               importlib.import_module("oxi_core.agentic.types")):
                    kind = getattr(source, field.type, None) or kind
            if isinstance(kind, type) and issubclass(kind, enum.Enum):
                row = re.search(rf"^\| `{field.name}` \|.*$", texts[dotted], flags=re.MULTILINE)
                assert row is not None
                for value in kind:
                    shown = f"`{value.value}`" if value.value else '`""`'
                    assert shown in row[0], (dotted, field.name, value)


def test_the_documented_notified_events_are_those_that_reach_notifiers() -> None:
    from oxi_core.builtins.notifiers import NOTIFY_EVENT_TYPES
    from oxi_core.ledger import events as ev

    block = _block(DOC.read_text(encoding="utf-8"), "<!-- notified events:",
                   "<!-- end notified events -->")
    listed = re.findall(r"`([a-z_]+)`", block.split("These do, because", 1)[1])
    assert sorted(listed) == sorted(NOTIFY_EVENT_TYPES)
    names = {value for key, value in vars(ev).items() if key.isupper()}
    assert set(listed) <= names  # every one is a real event type
