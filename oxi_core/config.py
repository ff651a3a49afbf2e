"""oxi.toml -> typed settings, and the plugin objects built from their constructor kwargs.

Every error names the file, the table, the key, and what was expected. Secrets never live in
the file: a value ``{ env = "NAME" }`` is read from the environment (and redacted from logs).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import cattrs

from oxi_core.errors import ConfigError
from oxi_core.hookspecs import KIND_HOOKS
from oxi_core.log import register_secret
from oxi_core.policy import Policy, RepoPaths
from oxi_core.protocols import RepositoryAdapter

if TYPE_CHECKING:
    from oxi_core.ledger import Ledger
    from oxi_core.registry import Registry

CONFIG_FILENAME = "oxi.toml"
ADAPTER_ENTRY_POINT_GROUP = "oxi.adapters"
SECTION_TABLES = ("adapter", "engine", "roles", "worktree", "shadow")
KNOWN_TABLES = (*SECTION_TABLES, *KIND_HOOKS)
INSTANCE_KEYS = frozenset({"type", "kwargs", "trust"})
TRUST_LEVELS = ("normal", "high")
HOOK_NAMES = ("after_create", "before_run", "after_run", "before_remove")


@attrs.frozen
class HookCommand:
    """A worktree hook: an argv list (never a shell string) and a timeout."""

    argv: tuple[str, ...]
    timeout_s: float = 600.0


@attrs.frozen
class WorktreeSettings:
    hooks: Mapping[str, HookCommand] = attrs.field(factory=dict)


@attrs.frozen
class Roles:
    """Which configured instance plays each part. Unset roles are filled in by ``resolve``."""

    worker: str | None = None
    critic: str | None = None
    forge: str | None = None
    shadow: str | None = None


@attrs.frozen
class InstanceSpec:
    kind: str
    name: str
    type: str
    kwargs: Mapping[str, Any]
    trust: str = "normal"
    distribution: str = ""


class RuntimeContext:
    """What plugins' optional ``bind(context)`` receive: paths, config folder, the ledger."""

    def __init__(self, paths: RepoPaths, config_dir: Path) -> None:
        self._paths = paths
        self._config_dir = config_dir
        self._ledger: Ledger | None = None

    @property
    def paths(self) -> RepoPaths:
        return self._paths

    @property
    def config_dir(self) -> Path:
        return self._config_dir

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from oxi_core.ledger import Ledger

            self._ledger = Ledger(self._paths.ledger)
        return self._ledger

    def use_ledger(self, ledger: Ledger) -> None:
        self._ledger = ledger


@attrs.define
class OxiConfig:
    path: Path | None
    config_dir: Path
    adapter: RepositoryAdapter
    paths: RepoPaths
    policy: Policy
    specs: dict[str, dict[str, InstanceSpec]]
    instances: dict[str, dict[str, Any]]
    roles: Roles
    worktree: WorktreeSettings
    context: RuntimeContext

    def instance(self, kind: str, name: str) -> Any:
        return self.instances[kind][name]

    @property
    def worker(self) -> Any | None:
        return self.instances["agents"].get(self.roles.worker) if self.roles.worker else None

    @property
    def critic(self) -> Any | None:
        return self.instances["judges"].get(self.roles.critic) if self.roles.critic else None

    @property
    def forge(self) -> Any:
        assert self.roles.forge is not None
        return self.instances["forges"][self.roles.forge]

    @property
    def shadow(self) -> Any | None:
        return self.instances["agents"].get(self.roles.shadow) if self.roles.shadow else None

    @property
    def gates(self) -> list[Any]:
        return list(self.instances["gates"].values())

    @property
    def notifiers(self) -> list[Any]:
        return list(self.instances["notifiers"].values())

    @cached_property
    def ledger(self) -> Ledger:
        return self.context.ledger


# -- locating and parsing ---------------------------------------------------------------


def find_config(explicit: Path | None = None, cwd: Path | None = None) -> Path | None:
    """--config, else $OXI_CONFIG, else oxi.toml in the current folder or a parent."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"no such file {explicit}",
                              hint="pass an existing oxi.toml, or run `oxi init` to write one")
        return explicit.resolve()
    env = os.environ.get("OXI_CONFIG")
    if env:
        return find_config(Path(env))
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            break
    return None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the file: {error}", file=str(path)) from error
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"invalid TOML: {error}", file=str(path),
            hint="fix the syntax at that line (strings need quotes, tables [brackets])",
        ) from error


# -- the strict converter ---------------------------------------------------------------


def _strict(expected: type, label: str) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) and expected is not bool:
            raise TypeError(f"expected {label}, got a boolean")
        if not isinstance(value, expected):
            raise TypeError(f"expected {label}, got {type(value).__name__} {value!r}")
        return value

    return hook


def make_converter(base_dir: Path) -> cattrs.Converter:
    """A converter that checks types strictly and resolves Paths against ``base_dir``."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(float, _strict(float, "a number"))
    converter.register_structure_hook(bool, _strict(bool, "true or false"))

    def path_hook(value: Any, _type: Any) -> Path:
        if not isinstance(value, str):
            raise TypeError(f"expected a path string, got {type(value).__name__} {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base_dir / path).resolve()

    converter.register_structure_hook(Path, path_hook)
    return converter


_AT_PATH = re.compile(r"^(?P<message>.*) @ \$(?P<path>.*)$")


def _config_error(error: Exception, *, file: str | None, table: str) -> ConfigError:
    """Turn a cattrs failure into one line naming the first offending key."""
    messages = (
        cattrs.transform_error(error) if isinstance(error, cattrs.BaseValidationError)
        else [str(error)]
    )
    first = messages[0] if messages else str(error)
    match = _AT_PATH.match(first)
    key = None
    message = first
    if match:
        message = match.group("message")
        key = match.group("path").lstrip(".") or None
        extra = re.match(r"extra fields found \((?P<names>.*)\)", message)
        if extra:
            key = extra.group("names")
            message = "unknown key"
        elif message == "required field missing":
            message = "required key is missing"
    return ConfigError(message, file=file, table=table, key=key)


def structure_kwargs(
    cls: type[Any], kwargs: Mapping[str, Any], *, converter: cattrs.Converter,
    file: str | None, table: str,
) -> Any:
    """Build ``cls`` from kwargs: attrs classes through cattrs, others by their signature."""
    if attrs.has(cls):
        allowed = {a.alias for a in attrs.fields(cls) if a.init}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown key; {cls.__name__} accepts {', '.join(sorted(allowed)) or 'none'}",
                file=file, table=table, key=unknown[0],
            )
        try:
            attrs.resolve_types(cls)
            return converter.structure(dict(kwargs), cls)
        except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as error:
            raise _config_error(error, file=file, table=table) from error
    signature = inspect.signature(cls)
    hints = typing.get_type_hints(cls.__init__)
    parameters = {n: p for n, p in signature.parameters.items() if n not in ("self",)}
    arguments: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name not in parameters:
            raise ConfigError(
                f"unknown key; {cls.__name__} accepts {', '.join(parameters) or 'none'}",
                file=file, table=table, key=name,
            )
        hint = hints.get(name)
        try:
            arguments[name] = value if hint is None else converter.structure(value, hint)
        except (cattrs.BaseValidationError, TypeError, ValueError) as error:
            raise ConfigError(str(error), file=file, table=table, key=name) from error
    for name, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and name not in arguments and (
            parameter.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                   inspect.Parameter.VAR_KEYWORD)
        ):
            raise ConfigError("required key is missing", file=file, table=table, key=name)
    return cls(**arguments)


def resolve_env(value: Any, *, file: str | None, table: str, key: str) -> Any:
    """Replace every ``{ env = "NAME" }`` with the environment's value (and mark it secret)."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = value["env"]
            if not isinstance(name, str) or not name:
                raise ConfigError("`env` must name an environment variable",
                                  file=file, table=table, key=key)
            secret = os.environ.get(name)
            if secret is None:
                raise ConfigError(
                    f"environment variable {name} is not set",
                    file=file, table=table, key=key,
                    hint=f"export {name}=... before running oxi, or remove the key",
                )
            register_secret(secret)
            return secret
        return {k: resolve_env(v, file=file, table=table, key=f"{key}.{k}" if key else k)
                for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, file=file, table=table, key=key) for v in value]
    return value


# -- loading ------------------------------------------------------------------------------


def load_config(
    path: Path | None = None, *, cwd: Path | None = None, registry: Registry | None = None
) -> OxiConfig:
    """Load oxi.toml (or the embedded defaults when there is none) and build every plugin."""
    from oxi_core.registry import get_registry

    registry = registry or get_registry()
    config_path = find_config(path, cwd)
    data = read_toml(config_path) if config_path else {}
    config_dir = config_path.parent if config_path else (cwd or Path.cwd()).resolve()
    file = str(config_path) if config_path else None
    converter = make_converter(config_dir)

    for table in data:
        if table not in KNOWN_TABLES:
            raise ConfigError(
                f"unknown table; expected one of {', '.join(KNOWN_TABLES)}",
                file=file, table=table,
            )
        if not isinstance(data[table], dict):
            raise ConfigError("expected a table", file=file, table=table)

    adapter = _load_adapter(data.get("adapter"), converter=converter, file=file,
                            config_dir=config_dir)
    paths = adapter.paths()
    policy = _load_policy(adapter.policy(), data.get("engine", {}), converter, file)
    specs = {kind: _instance_specs(kind, data.get(kind, {}), registry, file)
             for kind in KIND_HOOKS}
    roles = _load_roles(data.get("roles", {}), converter, file)
    shadow_env = os.environ.get("OXI_AGENTIC_SHADOW")
    if shadow_env:
        roles = attrs.evolve(roles, shadow=shadow_env)
    roles = _resolve_roles(roles, specs, registry, file)
    worktree = _load_worktree(data.get("worktree", {}), converter, file)
    context = RuntimeContext(paths, config_dir)
    instances = {
        kind: {name: _build(spec, registry, converter, file, context)
               for name, spec in kind_specs.items()}
        for kind, kind_specs in specs.items()
    }
    return OxiConfig(config_path, config_dir, adapter, paths, policy, specs, instances, roles,
                     worktree, context)


def _load_adapter(
    table: Any, *, converter: cattrs.Converter, file: str | None, config_dir: Path
) -> RepositoryAdapter:
    if table is None:
        return _adapter_from_entry_points(config_dir, file)
    unknown = sorted(set(table) - {"class", "kwargs"})
    if unknown:
        raise ConfigError("unknown key; [adapter] takes `class` and `kwargs`",
                          file=file, table="adapter", key=unknown[0])
    dotted = table.get("class")
    if not isinstance(dotted, str) or not dotted:
        raise ConfigError('expected a dotted class path such as "oxi_adapter_self.SelfAdapter"',
                          file=file, table="adapter", key="class")
    cls = import_dotted(dotted, file=file)
    kwargs = resolve_env(table.get("kwargs", {}), file=file, table="adapter", key="kwargs")
    if not isinstance(kwargs, dict):
        raise ConfigError("expected a table of constructor arguments",
                          file=file, table="adapter", key="kwargs")
    adapter = structure_kwargs(cls, kwargs, converter=converter, file=file, table="adapter")
    if not isinstance(adapter, RepositoryAdapter):
        raise ConfigError(f"{dotted} is not a repository adapter: it needs paths() and policy()",
                          file=file, table="adapter", key="class")
    return adapter


def import_dotted(dotted: str, *, file: str | None) -> type[Any]:
    module_name, _, attr = dotted.replace(":", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(
            f"cannot import {dotted!r} ({type(error).__name__}: {error})",
            file=file, table="adapter", key="class",
            hint="install the distribution that provides it, or fix the dotted path",
        ) from error
    if not isinstance(cls, type):
        raise ConfigError(f"{dotted!r} is not a class", file=file, table="adapter", key="class")
    return cls


def _adapter_from_entry_points(config_dir: Path, file: str | None) -> RepositoryAdapter:
    from importlib.metadata import entry_points

    found = list(entry_points(group=ADAPTER_ENTRY_POINT_GROUP))
    if not found:
        raise ConfigError(
            "no repository adapter: oxi.toml has no [adapter] and no distribution provides "
            f"one in entry point group {ADAPTER_ENTRY_POINT_GROUP!r}",
            file=file, table="adapter",
            hint='add [adapter] class = "oxi_adapter_self.SelfAdapter" or pip install '
                 "oxi-adapter-self",
        )
    if len(found) > 1:
        names = ", ".join(sorted(f"{ep.name} ({ep.value})" for ep in found))
        raise ConfigError(
            f"several repository adapters are installed ({names}); choose one",
            file=file, table="adapter", hint='add [adapter] class = "..." to oxi.toml',
        )
    cls = found[0].load()
    adapter: RepositoryAdapter = cls(repo_root=config_dir)
    return adapter


def _load_policy(
    base: Policy, table: Mapping[str, Any], converter: cattrs.Converter, file: str | None
) -> Policy:
    allowed = {field.name for field in attrs.fields(Policy)}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key; [engine] accepts {', '.join(sorted(allowed))}",
                              file=file, table="engine", key=key)
    merged = {**attrs.asdict(base), **table}
    try:
        policy = converter.structure(merged, Policy)
    except (cattrs.BaseValidationError, TypeError) as error:
        raise _config_error(error, file=file, table="engine") from error
    if policy.max_concurrent < 1:
        raise ConfigError("expected at least 1", file=file, table="engine", key="max_concurrent")
    if policy.budget_per_day_usd < 0:
        raise ConfigError("expected a positive number of dollars", file=file, table="engine",
                          key="budget_per_day_usd")
    return policy


def _instance_specs(
    kind: str, table: Mapping[str, Any], registry: Registry, file: str | None
) -> dict[str, InstanceSpec]:
    specs: dict[str, InstanceSpec] = {}
    for name, body in table.items():
        where = f"{kind}.{name}"
        if not isinstance(body, dict):
            raise ConfigError("expected a table with `type` and `kwargs`", file=file, table=where)
        unknown = sorted(set(body) - INSTANCE_KEYS)
        if unknown:
            raise ConfigError("unknown key; expected `type`, `kwargs` or `trust`",
                              file=file, table=where, key=unknown[0])
        type_name = body.get("type", name)
        if not isinstance(type_name, str):
            raise ConfigError("expected a string", file=file, table=where, key="type")
        registration = registry.get(kind, type_name)
        if registration is None:
            installed = ", ".join(registry.names(kind)) or "none"
            raise ConfigError(
                f"unknown {kind[:-1] if kind.endswith('s') else kind} type {type_name!r}; "
                f"installed: {installed}",
                file=file, table=where, key="type",
                hint="pip install the plugin that provides it (see `oxi plugins`)",
            )
        kwargs = body.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ConfigError("expected a table", file=file, table=where, key="kwargs")
        trust = body.get("trust", "normal")
        if trust not in TRUST_LEVELS:
            raise ConfigError(f"expected one of {', '.join(TRUST_LEVELS)}",
                              file=file, table=where, key="trust")
        specs[name] = InstanceSpec(kind, name, type_name,
                                   resolve_env(kwargs, file=file, table=where, key="kwargs"),
                                   trust, registration.distribution)
    return specs


def _build(
    spec: InstanceSpec, registry: Registry, converter: cattrs.Converter, file: str | None,
    context: RuntimeContext,
) -> Any:
    registration = registry.get(spec.kind, spec.type)
    assert registration is not None
    where = f"{spec.kind}.{spec.name}"
    instance = structure_kwargs(registration.cls, spec.kwargs, converter=converter, file=file,
                                table=where)
    bypass = getattr(instance, "permission_bypass", None)
    reason = bypass() if callable(bypass) else None
    if reason and spec.trust != "high":
        raise ConfigError(
            f"this agent bypasses its permission checks ({reason})",
            file=file, table=where, key="kwargs",
            hint='set trust = "high" for it if you accept that (see docs/security.md)',
        )
    bind = getattr(instance, "bind", None)
    if callable(bind):
        bind(context)
    return instance


def _load_roles(table: Mapping[str, Any], converter: cattrs.Converter, file: str | None) -> Roles:
    allowed = {field.name for field in attrs.fields(Roles)}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown role; expected {', '.join(sorted(allowed))}",
                              file=file, table="roles", key=key)
    try:
        return converter.structure(dict(table), Roles)
    except (cattrs.BaseValidationError, TypeError) as error:
        raise _config_error(error, file=file, table="roles") from error


# Instances that exist without configuration, so the embedded defaults run as they are.
DEFAULT_INSTANCES: Mapping[str, tuple[str, ...]] = {
    "forges": ("local",),
    "gates": ("budget", "file_overlap"),
    "notifiers": ("log",),
}


def _resolve_roles(
    roles: Roles, specs: dict[str, dict[str, InstanceSpec]], registry: Registry,
    file: str | None,
) -> Roles:
    for kind, names in DEFAULT_INSTANCES.items():
        if not specs[kind]:
            for name in names:
                registration = registry.get(kind, name)
                if registration is not None:
                    specs[kind][name] = InstanceSpec(kind, name, name, {}, "normal",
                                                     registration.distribution)
    forge = roles.forge or next(iter(specs["forges"]), None)
    worker = roles.worker or (next(iter(specs["agents"])) if len(specs["agents"]) == 1 else None)
    critic = roles.critic or (next(iter(specs["judges"])) if len(specs["judges"]) == 1 else None)
    resolved = Roles(worker=worker, critic=critic, forge=forge, shadow=roles.shadow)
    for role, kind in (("worker", "agents"), ("critic", "judges"), ("forge", "forges"),
                       ("shadow", "agents")):
        name = getattr(resolved, role)
        if name is not None and name not in specs[kind]:
            registration = registry.get(kind, name)
            if registration is None:
                configured = ", ".join(specs[kind]) or "none"
                raise ConfigError(
                    f"names {name!r}, which is not configured; configured {kind}: {configured}",
                    file=file, table="roles", key=role,
                    hint=f"add [{kind}.{name}] with a type and kwargs",
                )
            specs[kind][name] = InstanceSpec(kind, name, name, {}, "normal",
                                             registration.distribution)
    if resolved.forge is None:
        raise ConfigError("no forge is configured", file=file, table="forges",
                          hint='add [forges.local] type = "local"')
    return resolved


def _load_worktree(
    table: Mapping[str, Any], converter: cattrs.Converter, file: str | None
) -> WorktreeSettings:
    unknown = sorted(set(table) - {"hooks"})
    if unknown:
        raise ConfigError("unknown key; [worktree] takes `hooks`", file=file, table="worktree",
                          key=unknown[0])
    hooks: dict[str, HookCommand] = {}
    for name, body in dict(table.get("hooks", {})).items():
        where = f"worktree.hooks.{name}"
        if name not in HOOK_NAMES:
            raise ConfigError(f"unknown hook; expected one of {', '.join(HOOK_NAMES)}",
                              file=file, table="worktree.hooks", key=name)
        if not isinstance(body, dict):
            raise ConfigError('expected a table such as { argv = ["uv", "sync"] }',
                              file=file, table=where)
        hooks[name] = structure_kwargs(HookCommand, body, converter=converter, file=file,
                                       table=where)
        if not hooks[name].argv:
            raise ConfigError("expected a non-empty argv list", file=file, table=where,
                              key="argv")
    return WorktreeSettings(hooks)
