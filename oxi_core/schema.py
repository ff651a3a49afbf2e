"""Every oxi.toml key: its table, type, default and meaning, read from the classes that take
them (each field's type and default, and the comment written beside or above it).

`oxi config schema` prints it; docs/configuration.md is its `--markdown` output for the
distributions in oxi's repository, and a test keeps the two equal.
"""

from __future__ import annotations

import inspect
import json
import re
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from oxi_core.config import HOOK_NAMES, INSTANCE_KEYS, TRUST_LEVELS, HookCommand, Roles
from oxi_core.hookspecs import KIND_HOOKS
from oxi_core.policy import Policy
from oxi_core.registry import Registry

_FIELD = re.compile(r"^(?P<indent>\s+)(?P<name>_?[A-Za-z]\w*)\s*:\s*[^=\s]")


@attrs.frozen
class Key:
    name: str
    type: str
    default: str  # as TOML would spell it; "required" when there is none
    meaning: str


@attrs.frozen
class Section:
    title: str  # the table as written in oxi.toml: "[engine]", '[agents.NAME] type = "exec"'
    source: str  # the class (and distribution) the keys come from
    summary: str
    keys: tuple[Key, ...]


def field_comments(cls: type[Any]) -> dict[str, str]:
    """The comment above each field of ``cls`` or a class it inherits from (or, lacking one,
    beside it), by field name."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is not object:
            found.update({k: v for k, v in _own_comments(klass).items() if v})
    return found


def _own_comments(cls: type[Any]) -> dict[str, str]:
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    body_indent: str | None = None
    for index, line in enumerate(lines):
        match = _FIELD.match(line)
        if match is None or "(" in line.split(":", 1)[0]:
            continue
        if body_indent is None:
            body_indent = match["indent"]
        if match["indent"] != body_indent or "init=False" in line:
            continue  # a method's local, or a private field that is not a key
        above: list[str] = []
        for earlier in reversed(lines[:index]):
            stripped = earlier.strip()
            if not stripped.startswith("#"):
                break
            above.insert(0, stripped.lstrip("#").strip())
        beside = line.split("  # ", 1)[1].strip() if "  # " in line else ""
        found[match["name"].lstrip("_")] = " ".join(above) or beside
    return found


def keys_of(cls: type[Any]) -> tuple[Key, ...]:
    comments = field_comments(cls)
    if attrs.has(cls):
        return tuple(
            Key(field.alias or field.name, _type(field.type), _default(field.default),
                comments.get(field.alias or field.name, ""))
            for field in attrs.fields(cls) if field.init)
    parameters = [p for p in inspect.signature(cls).parameters.values()
                  if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return tuple(Key(p.name, _type(p.annotation), _default(p.default), comments.get(p.name, ""))
                 for p in parameters)


def _type(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return text.replace("typing.", "").replace("collections.abc.", "")


def _default(default: Any) -> str:
    if default is attrs.NOTHING or default is inspect.Parameter.empty:
        return "required"
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        factory = default.factory
        default = factory() if not default.takes_self else None
    if default is None:
        return "unset"
    if isinstance(default, Path):
        return json.dumps(str(default))
    try:
        return json.dumps(default, default=lambda o: o.value if hasattr(o, "value") else str(o))
    except (TypeError, ValueError):
        return str(default)


def schema(registry: Registry, *, distributions: Iterable[str] | None = None,
           adapters: Iterable[tuple[str, type[Any]]] = ()) -> list[Section]:
    """The sections of docs/configuration.md: oxi's own tables, then each registered type's
    kwargs (only those of ``distributions``, when given)."""
    from oxi_core.auto_improve.settings import AutoImproveSettings

    wanted = None if distributions is None else {_canonical(d) for d in distributions}
    sections = [
        Section("[adapter]", "oxi_core.config", "The repository adapter: where the roadmap, "
                "the .oxi/ state folder and the worktrees live, and the default policy. "
                "Without it, the one distribution installed in the `oxi.adapters` entry point "
                "group is used, on the folder holding oxi.toml.",
                (Key("class", "str", "the installed adapter",
                     'a dotted class path, e.g. "oxi_adapter_self.SelfAdapter"'),
                 Key("kwargs", "table", "{}", "the adapter's constructor arguments (below)"))),
    ]
    for name, cls in adapters:
        sections.append(Section(f"[adapter] kwargs of {name}", _where(cls), _summary(cls),
                                keys_of(cls)))
    sections += [
        Section("[engine]", "oxi_core.policy.Policy", _summary(Policy), keys_of(Policy)),
        Section("[roles]", "oxi_core.config.Roles", _summary(Roles), keys_of(Roles)),
        Section("[worktree.hooks]", "oxi_core.config.HookCommand",
                "Commands run in each task's worktree, by name: " + ", ".join(
                    f"`{n}`" for n in HOOK_NAMES) + ". Each is a table of these keys.",
                keys_of(HookCommand)),
        Section("[auto_improve]", "oxi_core.auto_improve.settings.AutoImproveSettings",
                _summary(AutoImproveSettings), keys_of(AutoImproveSettings)),
        Section("[KIND.NAME]", "oxi_core.config",
                "One table per plugin instance; KIND is one of " + ", ".join(
                    f"`{k}`" for k in KIND_HOOKS) + ", NAME is yours.",
                (Key("type", "str", "NAME", "the registered type (`oxi plugins` lists them)"),
                 Key("kwargs", "table", "{}", "the type's keys (below)"),
                 Key("trust", "str", '"normal"', "`" + '"` or `"'.join(TRUST_LEVELS)
                     + '"`: "high" allows an agent that bypasses its permission checks'))),
    ]
    assert set(INSTANCE_KEYS) == {"type", "kwargs", "trust"}
    for kind in KIND_HOOKS:
        for type_name in registry.names(kind):
            registration = registry.get(kind, type_name)
            assert registration is not None
            if wanted is not None and _canonical(registration.distribution) not in wanted:
                continue
            cls = registration.cls
            sections.append(Section(
                f'[{kind}.NAME] type = "{type_name}"',
                f"{_where(cls)} ({registration.distribution})", _summary(cls), keys_of(cls)))
    return sections


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _where(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _summary(cls: type[Any]) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def undocumented(sections: Iterable[Section]) -> list[str]:
    """Keys with no meaning written beside them: each needs a comment in its class."""
    return [f"{s.title} {k.name} ({s.source})" for s in sections for k in s.keys if not k.meaning]


def markdown(sections: Iterable[Section]) -> str:
    out = [
        "# oxi.toml: every key",
        "",
        "<!-- Generated by `oxi config schema --markdown` (scripts/configuration-doc writes",
        "     this file); tests/test_configuration_doc.py fails when it is out of date. -->",
        "",
        "oxi reads `oxi.toml` from the current folder or a parent (or `--config`, or",
        "`$OXI_CONFIG`). Relative paths start at the folder holding it. A value",
        '`{ env = "NAME" }` is read from the environment and redacted from logs and the',
        "ledger. `oxi config check` validates a file and names the line, table and key of each",
        "problem. Types are written as Python spells them: `str`, `int`, `float`, `bool`;",
        "`tuple[...]` and `list[...]` are arrays, `Mapping[...]` an inline table; `X | None`",
        "may be left out. This page lists the distributions in oxi's repository;",
        "`oxi config schema` lists what is installed where you run it.",
        "",
    ]
    for section in sections:
        out += [f"## `{section.title}`", ""]
        intro = f"From `{section.source}`." + (f" {_prose(section.summary)}"
                                              if section.summary else "")
        out += textwrap.wrap(intro, 100, break_long_words=False, break_on_hyphens=False)
        out.append("")
        if section.keys:
            out += ["| key | type | default | meaning |", "|---|---|---|---|"]
            out += [f"| `{k.name}` | `{_cell(k.type)}` | `{_cell(k.default)}` | "
                    f"{_cell(_prose(k.meaning))} |".replace("`unset`", "unset").replace(
                        "`required`", "required") for k in section.keys]
        else:
            out.append("No keys.")
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    """Text for a table cell: a `|` (even inside a code span) would end the cell on GitHub."""
    return text.replace("|", "\\|")


_URL = re.compile(r"(?<![`<(])\b(https?://[^\s`|]*[^\s`|.,;:)])")
_ANGLED = re.compile(r"<([^<>`]+)>")


def _prose(text: str) -> str:
    """A comment as Markdown text: URLs are examples, not links (code), and <words> are
    placeholders, not HTML tags."""
    return _ANGLED.sub(r"&lt;\1&gt;", _URL.sub(r"`\1`", text))


def repository_distributions(root: Path) -> list[str]:
    """The distributions whose source is in oxi's repository at ``root``."""
    import tomllib

    manifests = [root / "pyproject.toml", *root.glob("plugins/*/pyproject.toml"),
                 *root.glob("adapters/*/pyproject.toml")]
    return sorted(tomllib.loads(m.read_text(encoding="utf-8"))["project"]["name"]
                  for m in manifests if m.is_file())


def installed_adapters(distributions: Iterable[str] | None = None) -> list[tuple[str, type[Any]]]:
    from oxi_core.config import ADAPTER_ENTRY_POINT_GROUP
    from oxi_core.entrypoints import entry_points

    wanted = None if distributions is None else {_canonical(d) for d in distributions}
    found = []
    for entry in sorted(entry_points(ADAPTER_ENTRY_POINT_GROUP), key=lambda e: e.value):
        if wanted is None or _canonical(entry.distribution) in wanted:
            found.append((entry.value.replace(":", "."), entry.load()))
    return found
