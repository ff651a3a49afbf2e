"""routing.yaml: which adapter and model play a role, for a task (T2-39).

``route_for(role, task)`` is a pure function of the routing file(s) and the task: the first
rule of the role whose match holds. Files are parsed once per (path, mtime) with ruamel.yaml
(imported only then); errors name the file and line. The schema is documented in the comment
header of ``oxi_core/defaults/routing.yaml``.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from oxi_core.errors import ConfigError

DEFAULT_ROUTING_PATH = Path(__file__).resolve().parent.parent / "defaults" / "routing.yaml"
ROUTING_FILENAME = "routing.yaml"
ROLES = ("worker", "critic", "heartbeat-triage", "auto-improve-judge",
         "prompt-injection-screen", "summary")
# For the worker role: the agent [roles] worker names.
DEFAULT_AGENT = "default"
RULE_KEYS = frozenset({"name", "match", "adapter", "model", "fallback", "why"})
MATCH_KEYS = frozenset({"tier", "title_words", "files"})
_WORD = re.compile(r"[a-z0-9]+")


class RoutingError(ConfigError):
    """routing.yaml is missing or malformed; the message names the file and the line."""


class RoleNotConfiguredError(RoutingError):
    """No rule of routing.yaml routes this role (for this task)."""


@attrs.frozen
class ModelRef:
    """An adapter (an [agents.*] or [inference.*] name of oxi.toml) and optionally a model."""

    adapter_name: str
    model_id: str | None = None

    def label(self) -> str:
        return f"{self.adapter_name}:{self.model_id}" if self.model_id else self.adapter_name


@attrs.frozen
class ModelChoice:
    """What a role uses for one call or dispatch: the first choice and its fallback chain."""

    role: str
    adapter_name: str
    model_id: str | None
    fallback_chain: tuple[ModelRef, ...] = ()
    rule: str = ""
    why: str = ""
    source: str = ""  # "path:line" of the rule

    @property
    def chain(self) -> tuple[ModelRef, ...]:
        """The first choice, then each fallback, in the order they are tried."""
        return (ModelRef(self.adapter_name, self.model_id), *self.fallback_chain)


def task_fields(task: Any) -> tuple[int | None, str, tuple[str, ...]]:
    """(tier, title, files) of a Task, a RoadmapItem or a mapping (None: no task)."""
    if task is None:
        return None, "", ()
    if isinstance(task, Mapping):
        files = task.get("files_touched", task.get("files", ())) or ()
        return task.get("tier"), str(task.get("title") or ""), tuple(files)
    files = getattr(task, "files_touched", None) or getattr(task, "files", ()) or ()
    return getattr(task, "tier", None), str(getattr(task, "title", "") or ""), tuple(files)


@attrs.frozen
class Match:
    tiers: frozenset[int] | None = None
    title_words: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def check(self, task: Any) -> tuple[bool, str]:
        """Whether ``task`` matches, and why (or why not), in words."""
        if task is None:
            return False, "no task to match"
        tier, title, files = task_fields(task)
        reasons: list[str] = []
        if self.tiers is not None:
            if tier not in self.tiers:
                return False, f"tier {tier} is not {_tiers(self.tiers)}"
            reasons.append(f"tier {tier}")
        if self.title_words:
            words = _WORD.findall(title.lower())
            hit = next(((w, p) for w in words for p in self.title_words if w.startswith(p)),
                       None)
            if hit is None:
                return False, f"no title word starts with {' or '.join(self.title_words)}"
            reasons.append(f"title word {hit[0]!r} starts with {hit[1]!r}")
        if self.files:
            found = next((f for f in files for p in self.files if fnmatch.fnmatchcase(f, p)),
                         None)
            if found is None:
                return False, (f"no known file matches {', '.join(self.files)}" if files
                               else "the task touches no known file")
            reasons.append(f"file {found}")
        return True, ", ".join(reasons)


def _tiers(tiers: frozenset[int]) -> str:
    return " or ".join(str(t) for t in sorted(tiers))


@attrs.frozen
class Rule:
    name: str
    match: Match | None
    choice: ModelChoice


@attrs.frozen
class RuleCheck:
    rule: Rule
    matched: bool
    reason: str


@attrs.frozen
class Routing:
    roles: Mapping[str, tuple[Rule, ...]]
    sources: tuple[str, ...] = ()

    def rules(self, role: str) -> tuple[Rule, ...]:
        rules = self.roles.get(role)
        if rules is None:
            raise RoleNotConfiguredError(
                f"role {role!r} has no rules; routed roles: {', '.join(sorted(self.roles))}",
                file=" + ".join(self.sources) or None,
                hint=f"add `{role}:` under `roles:` in {ROUTING_FILENAME}")
        return rules

    def route_for(self, role: str, task: Any = None) -> ModelChoice:
        for rule in self.rules(role):
            if rule.match is None or rule.match.check(task)[0]:
                return rule.choice
        raise RoleNotConfiguredError(
            f"no rule of role {role!r} matches {_describe_task(task)}",
            file=" + ".join(self.sources) or None,
            hint="end the role's rules with one that has no `match`")

    def explain(self, role: str, task: Any = None) -> list[RuleCheck]:
        """Every rule of the role in order, whether it matched and why; the first match wins."""
        checks = []
        for rule in self.rules(role):
            if rule.match is None:
                checks.append(RuleCheck(rule, True, "matches every task"))
            else:
                matched, reason = rule.match.check(task)
                checks.append(RuleCheck(rule, matched, reason))
        return checks


def _describe_task(task: Any) -> str:
    if task is None:
        return "a call made for no task"
    tier, title, _files = task_fields(task)
    return f"task {getattr(task, 'id', '')} (tier {tier}, {title!r})".replace("task  ", "task ")


# -- loading ----------------------------------------------------------------------------------


def _line(node: Any, key: Any = None) -> int | None:
    """The 1-based line of a ruamel node (or of one of its keys), when known."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is not None:
            return int(lc.key(key)[0]) + 1 if isinstance(key, str) else int(lc.item(key)[0]) + 1
        return int(lc.line) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _error(path: Path, line: int | None, table: str, key: str | None, message: str,
           hint: str | None = None) -> RoutingError:
    where = f"{path}:{line}" if line else str(path)
    return RoutingError(message, file=where, table=table, key=key, hint=hint)


def _string_list(value: Any, *, path: Path, line: int | None, table: str, key: str,
                 lower: bool = False) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(
        isinstance(v, str) and v for v in values
    ):
        raise _error(path, line, table, key, "expected a word or a list of words such as [doc]")
    return tuple(v.lower() if lower else v for v in values)


def _parse_match(node: Any, *, path: Path, table: str) -> Match:
    line = _line(node)
    if not isinstance(node, Mapping) or not node:
        raise _error(path, line, table, "match",
                     "expected a table such as {tier: 2, title_words: [doc]}")
    unknown = sorted(set(node) - MATCH_KEYS)
    if unknown:
        raise _error(path, _line(node, unknown[0]) or line, table, f"match.{unknown[0]}",
                     f"unknown key; a match takes {', '.join(sorted(MATCH_KEYS))}")
    tiers: frozenset[int] | None = None
    if "tier" in node:
        raw = node["tier"]
        values = raw if isinstance(raw, list) else [raw]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise _error(path, _line(node, "tier") or line, table, "match.tier",
                         f"expected a tier number or a list of them, got {raw!r}")
        tiers = frozenset(values)
    words = (_string_list(node["title_words"], path=path, line=_line(node, "title_words"),
                          table=table, key="match.title_words", lower=True)
             if "title_words" in node else ())
    files = (_string_list(node["files"], path=path, line=_line(node, "files"), table=table,
                          key="match.files") if "files" in node else ())
    return Match(tiers, words, files)


def _parse_ref(node: Any, *, path: Path, line: int | None, table: str) -> ModelRef:
    if isinstance(node, str) and node:
        return ModelRef(node)
    if isinstance(node, Mapping) and isinstance(node.get("adapter"), str) and (
        set(node) <= {"adapter", "model"}
    ) and (node.get("model") is None or isinstance(node.get("model"), str)):
        return ModelRef(node["adapter"], node.get("model"))
    raise _error(path, _line(node) or line, table, "fallback",
                 "expected an adapter name or {adapter: NAME, model: MODEL}")


def _parse_rule(role: str, index: int, node: Any, path: Path) -> Rule:
    table = f"roles.{role}[{index}]"
    line = _line(node)
    if not isinstance(node, Mapping):
        raise _error(path, line, table, None,
                     "expected a rule: a table with `adapter` (and `name`, `match`, `model`, "
                     "`fallback`)")
    unknown = sorted(set(node) - RULE_KEYS)
    if unknown:
        raise _error(path, _line(node, unknown[0]) or line, table, unknown[0],
                     f"unknown key; a rule takes {', '.join(sorted(RULE_KEYS))}")
    adapter = node.get("adapter")
    if not isinstance(adapter, str) or not adapter:
        raise _error(path, _line(node, "adapter") or line, table, "adapter",
                     "expected the name of an adapter configured in oxi.toml")
    model = node.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise _error(path, _line(node, "model") or line, table, "model",
                     "expected a model name")
    if role != "worker" and model is None:
        raise _error(path, line, table, "model",
                     f"role {role} calls an inference target, which needs a model",
                     hint="add `model: NAME` to the rule")
    name = node.get("name", f"rule {index + 1}")
    if not isinstance(name, str):
        raise _error(path, _line(node, "name") or line, table, "name", "expected a string")
    fallback_node = node.get("fallback", [])
    if not isinstance(fallback_node, list):
        raise _error(path, _line(node, "fallback") or line, table, "fallback",
                     "expected a list such as [claude]")
    fallback = tuple(_parse_ref(item, path=path, line=_line(fallback_node, i), table=table)
                     for i, item in enumerate(fallback_node))
    match = (_parse_match(node["match"], path=path, table=table) if "match" in node else None)
    why = node.get("why", "")
    choice = ModelChoice(role=role, adapter_name=adapter, model_id=model,
                         fallback_chain=fallback, rule=name, why=str(why or ""),
                         source=f"{path}:{line}" if line else str(path))
    return Rule(name, match, choice)


def parse_routing(text: str, path: Path) -> dict[str, tuple[Rule, ...]]:
    """The roles of one routing file, or a RoutingError naming its path and line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise _error(path, line, "", None, f"invalid YAML: {error.problem or error}",
                     hint="fix the syntax at that line (indentation, a missing colon)") from error
    except YAMLError as error:
        raise _error(path, None, "", None, f"invalid YAML: {error}") from error
    if not isinstance(data, Mapping) or not isinstance(data.get("roles"), Mapping):
        raise _error(path, _line(data), "", "roles",
                     "expected a table `roles:` mapping each role to its rules")
    version = data.get("version", 1)
    if version != 1:
        raise _error(path, _line(data, "version"), "", "version",
                     f"unknown version {version!r}; this oxi reads version 1")
    unknown = sorted(set(data) - {"version", "roles"})
    if unknown:
        raise _error(path, _line(data, unknown[0]), "", unknown[0],
                     "unknown key; the file takes `version` and `roles`")
    roles: dict[str, tuple[Rule, ...]] = {}
    for role, rules in data["roles"].items():
        line = _line(data["roles"], role)
        if role not in ROLES:
            raise _error(path, line, "roles", str(role),
                         f"unknown role; expected one of {', '.join(ROLES)}")
        if not isinstance(rules, list) or not rules:
            raise _error(path, line, f"roles.{role}", None, "expected a list of rules")
        parsed = tuple(_parse_rule(role, i, node, path) for i, node in enumerate(rules))
        names = [r.name for r in parsed]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise _error(path, line, f"roles.{role}", "name",
                         f"two rules are named {duplicate!r}")
        roles[str(role)] = parsed
    return roles


@functools.lru_cache(maxsize=32)
def _parse_file(path: Path, _mtime_ns: int) -> dict[str, tuple[Rule, ...]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RoutingError(f"cannot read the routing file: {error}", file=str(path),
                           hint="restore it, or remove the path that names it") from error
    return parse_routing(text, path)


def _read(path: Path) -> dict[str, tuple[Rule, ...]]:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as error:
        raise RoutingError("the routing file does not exist", file=str(path),
                           hint="restore it, or unset the setting that names it") from error
    return _parse_file(path, mtime)


def routing_paths(config_dir: Path | None = None) -> list[Path]:
    """The files routing reads, defaults first: the shipped defaults, then ``$OXI_ROUTING``
    or the ``routing.yaml`` beside oxi.toml."""
    paths = [DEFAULT_ROUTING_PATH]
    override = os.environ.get("OXI_ROUTING")
    if override:
        paths.append(Path(override))
    elif config_dir is not None and (config_dir / ROUTING_FILENAME).is_file():
        paths.append(config_dir / ROUTING_FILENAME)
    return paths


def load_routing(config_dir: Path | None = None, *,
                 paths: Sequence[Path] | None = None) -> Routing:
    """The defaults, with every role a later file lists replaced by that file's rules."""
    files = list(paths) if paths is not None else routing_paths(config_dir)
    roles: dict[str, tuple[Rule, ...]] = {}
    for path in files:
        roles.update(_read(path))
    return Routing(roles, tuple(str(p) for p in files))


def route_for(role: str, task: Any = None, *, routing: Routing | None = None) -> ModelChoice:
    """The adapter, model and fallback chain for ``role`` (and ``task``, when one is given)."""
    return (routing or load_routing()).route_for(role, task)


def configured_chain(choice: ModelChoice, configured: Iterable[str]) -> list[ModelRef]:
    """The choice's chain without the adapters oxi.toml does not configure."""
    names = set(configured)
    return [ref for ref in choice.chain if ref.adapter_name in names]
