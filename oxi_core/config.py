"""oxi.toml -> typed settings, and the plugin objects built from their constructor kwargs.

Every error names the file, the table, the key, and what was expected. Secrets never live in
the file: a value ``{ env = "NAME" }`` is read from the environment (and redacted from logs).
"""

from __future__ import annotations

import collections.abc
import contextlib
import importlib
import inspect
import os
import re
import tomllib
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core.errors import ConfigError, NotARepository
from oxi_core.hookspecs import KIND_HOOKS
from oxi_core.log import redact_text, register_secret
from oxi_core.plain_structure import UNSURE, structure_plain
from oxi_core.policy import Policy, RepoPaths
from oxi_core.protocols import RepositoryAdapter

if TYPE_CHECKING:
    import cattrs

    from oxi_core.auto_improve.settings import AutoImproveSettings
    from oxi_core.ledger import Ledger
    from oxi_core.registry import Registry

CONFIG_FILENAME = "oxi.toml"
ADAPTER_ENTRY_POINT_GROUP = "oxi.adapters"
SECTION_TABLES = ("adapter", "engine", "roles", "worktree", "auto_improve")
KNOWN_TABLES = (*SECTION_TABLES, *KIND_HOOKS)
INSTANCE_KEYS = frozenset({"type", "kwargs", "trust"})
TRUST_LEVELS = ("normal", "high")
HOOK_NAMES = ("after_create", "before_run", "after_run", "before_remove")


@attrs.frozen
class HookCommand:
    """A worktree hook: an argv list (never a shell string) and a timeout."""

    # The command, an argv list (never a shell string); it runs in the task's worktree.
    argv: tuple[str, ...]
    # Seconds before the hook's process group is killed and the task requeued (default:
    # [engine] hook_timeout_s).
    timeout_s: float | None = None

    def timeout(self, policy: Policy, name: str) -> tuple[float, str]:
        """The seconds this hook may run, and the key that sets them."""
        if self.timeout_s is not None:
            return self.timeout_s, f"[worktree.hooks.{name}] timeout_s"
        return policy.hook_timeout_s, "[engine] hook_timeout_s"


@attrs.frozen
class WorktreeSettings:
    hooks: Mapping[str, HookCommand] = attrs.field(factory=dict)


@attrs.frozen
class Roles:
    """Which configured instance plays each part. Unset roles are filled in by ``resolve``."""

    # The agent that works on tasks (default: the only agent configured).
    worker: str | None = None
    # One judge, or several (`critic = ["tests", "review"]`): every one must approve.
    critic: str | tuple[str, ...] | None = None
    # The forge pull requests go to (default: the only one configured, else `local`).
    forge: str | None = None
    # An agent also run on every dispatch, observed only (OXI_AGENTIC_SHADOW overrides it).
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
    """What plugins' optional ``bind(context)`` receive: paths, config folder, the ledger,
    the [auto_improve] settings."""

    def __init__(self, paths: RepoPaths, config_dir: Path,
                 auto_improve: AutoImproveSettings | None = None) -> None:
        self._paths = paths
        self._config_dir = config_dir
        self._auto_improve = auto_improve  # None: the defaults, built when first asked for
        self._ledger: Ledger | None = None
        self._config: OxiConfig | None = None

    @property
    def config(self) -> OxiConfig:
        """The whole loaded configuration (inference targets, policy): set once loading is
        done, so a plugin reads it when it works, never in ``bind``."""
        if self._config is None:
            raise RuntimeError("the configuration is still loading; read context.config later")
        return self._config

    def attach(self, config: OxiConfig) -> None:
        self._config = config

    @property
    def paths(self) -> RepoPaths:
        return self._paths

    @property
    def config_dir(self) -> Path:
        return self._config_dir

    @property
    def auto_improve(self) -> AutoImproveSettings:
        if self._auto_improve is None:
            from oxi_core.auto_improve.settings import AutoImproveSettings

            self._auto_improve = AutoImproveSettings()
        return self._auto_improve

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
    # Plugins left unbuilt because a secret they need is not set ("kind.name" -> why), when
    # loaded with secrets=False: fine for reading the ledger, never for running the engine.
    unbuilt: Mapping[str, ConfigError] = attrs.field(factory=dict)
    # `oxi tick --worker NAME`: this agent runs every task of this run, whatever the routing.
    worker_override: str | None = None

    def override_worker(self, name: str, *, by_type: bool = False) -> None:
        """Make the agent ``name`` the worker for this run (``by_type``: the agent of that
        type, as `--real-claude` asks for claude); a clear error when there is none, or when
        its binary is missing."""
        from oxi_core.doctor import binary_problem

        agents = self.instances["agents"]
        chosen = name if name in agents else None
        if chosen is None and by_type:
            of_type = [n for n, spec in self.specs["agents"].items()
                       if spec.type == name and n in agents]
            chosen = of_type[0] if len(of_type) == 1 else None
        flag = "--real-claude" if by_type else f"--worker {name}"
        if chosen is None:
            configured = ", ".join(agents) or "none"
            hint = (f'add [agents.{name}] type = "{name}" to oxi.toml'
                    + (f" (pip install {KNOWN_DISTRIBUTIONS[name]})"
                       if name in KNOWN_DISTRIBUTIONS else ""))
            raise ConfigError(f"{flag}: no {name} agent is configured; configured agents: "
                              f"{configured}{did_you_mean(name, agents)}", file=(
                                  str(self.path) if self.path else None), table="agents",
                              hint=hint)
        binary = getattr(agents[chosen], "binary", None)
        problem = binary_problem(binary) if isinstance(binary, str) and binary else None
        if problem is not None:
            raise ConfigError(f"{flag}: {problem}", file=str(self.path) if self.path else None,
                              table=f"agents.{chosen}", key="kwargs.binary",
                              hint="install it, or set kwargs.binary to its path")
        self.roles = attrs.evolve(self.roles, worker=chosen)
        self.worker_override = chosen

    def require_secrets(self) -> None:
        """Raise the first missing secret's error, if any plugin was left unbuilt."""
        for error in self.unbuilt.values():
            raise error

    def instance(self, kind: str, name: str) -> Any:
        return self.instances[kind][name]

    @property
    def worker(self) -> Any | None:
        return self.instances["agents"].get(self.roles.worker) if self.roles.worker else None

    @property
    def critic(self) -> Any | None:
        names = self.roles.critic
        if isinstance(names, tuple):
            from oxi_core.builtins.composite_critic import CompositeCritic

            return CompositeCritic(tuple((name, self.instances["judges"][name])
                                         for name in names))
        return self.instances["judges"].get(names) if names else None

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

    @property
    def auto_improve(self) -> AutoImproveSettings:
        return self.context.auto_improve


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
        if is_work_tree_top(folder):
            break
    return None


def is_work_tree_top(folder: Path) -> bool:
    """``folder`` holds a git repository: a .git folder with a HEAD, or a .git file (a linked
    worktree). An empty .git folder left by something else is not one."""
    dot_git = folder / ".git"
    return dot_git.is_file() or (dot_git / "HEAD").is_file()


def read_toml(path: Path) -> dict[str, Any]:
    return read_toml_text(path)[1]


def read_toml_text(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its data; a syntax error names the line (and the table and key
    only when the failing line sits inside one: a broken header belongs to no table)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the file: {error}", file=str(path)) from error
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line, table, key = _toml_error_location(text, str(error))
        raise ConfigError(
            f"invalid TOML: {re.sub(_TOML_AT_LINE, '', str(error)).rstrip(' (,')}", file=str(path),
            table=table, key=key, line=line,
            hint="fix the syntax at that line (strings need quotes, tables [brackets])",
        ) from error


# Patterns as text: compiled (and cached by `re`) on the first error, never on a good load.
_TOML_AT_LINE = r"\(?at line (?P<line>\d+), column \d+\)?|at end of document"
_TOML_HEADER = r"^\s*\[\[?(?P<name>[^\[\]]+)\]\]?\s*(#.*)?$"
_TOML_KEY = r"^\s*(?P<key>[A-Za-z0-9_\-.\"' ]+?)\s*="


def _dotted(name: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


def _toml_error_location(text: str, message: str) -> tuple[int | None, str | None, str | None]:
    """(line, table, key) of a syntax error: the line tomllib names, the key it assigns, and
    the table header above it unless the line is itself a (broken) header."""
    found = re.search(_TOML_AT_LINE, message)
    lines = text.splitlines()
    number = int(found.group("line")) if found and found.group("line") else len(lines)
    if not 1 <= number <= len(lines):
        return None, None, None
    failing = lines[number - 1]
    if failing.lstrip().startswith("["):
        return number, None, None
    assigned = re.match(_TOML_KEY, failing)
    key = _dotted(assigned.group("key")) if assigned else None
    for line in reversed(lines[: number - 1]):
        header = re.match(_TOML_HEADER, line)
        if header:
            return number, _dotted(header.group("name")), key
    return number, None, key


def toml_key_lines(text: str) -> dict[str, int]:
    """Each table's and key's dotted path (``agents.demo.kwargs.argv``) -> its line, 1-based.

    A key inside an inline table or a multi-line value is found at the line of the key that
    holds it. Good enough for error messages; tomllib has already accepted the text.
    """
    found: dict[str, int] = {}
    table = ""
    depth = 0  # brackets and braces open across lines (a multi-line array)
    for number, line in enumerate(text.splitlines(), start=1):
        if depth == 0:
            header = re.match(_TOML_HEADER, line)
            if header:
                table = _dotted(header.group("name"))
                parts = table.split(".")
                for end in range(1, len(parts) + 1):  # [a.b] defines table a too
                    found.setdefault(".".join(parts[:end]), number)
            else:
                assigned = re.match(_TOML_KEY, line)
                if assigned:
                    key = _dotted(assigned.group("key"))
                    found.setdefault(f"{table}.{key}" if table else key, number)
        depth = max(0, depth + _bracket_balance(line))
    return found


def _bracket_balance(line: str) -> int:
    balance, quote = 0, ""
    for char in line:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            balance += 1
        elif char in "]}":
            balance -= 1
    return balance


def line_of(lines: Mapping[str, int], table: str | None, key: str | None) -> int | None:
    """The line of ``[table] key``, or of the nearest enclosing key or table that exists."""
    path = ".".join(part for part in (table, re.sub(r"\[\d+\]", "", key or "")) if part)
    parts = path.split(".") if path else []
    while parts:
        found = lines.get(".".join(parts))
        if found is not None:
            return found
        parts.pop()
    return None


@contextlib.contextmanager
def errors_at_lines(text: str) -> Iterator[None]:
    """Re-raise a ConfigError about this file with the line it is about."""
    try:
        yield
    except ConfigError as error:
        if error.line is not None or error.file is None:
            raise
        raise error.at_line(line_of(toml_key_lines(text), error.table, error.key)) from (
            error.__cause__)


# -- the strict converter ---------------------------------------------------------------


class _Expected(TypeError):
    """A value of the wrong shape; its message is shown to the operator as it is."""


def _describe(value: Any) -> str:
    """A TOML value as the operator wrote it, with any ``{ env = ... }`` secret redacted."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the string {redact_text(repr(value))}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _strict(expected: type, label: str) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _type: Any) -> Any:
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) is not (expected is bool) or not isinstance(value, expected):
            raise _Expected(f"expected {label}, got {_describe(value)}")
        return value

    return hook


# Collections a TOML array structures into. cattrs would happily iterate a string into one
# (argv = "uv sync" becoming ("u", "v", " ", ...)), so a string is refused instead.
_ARRAY_ORIGINS = frozenset({
    list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.MutableSequence,
    collections.abc.Set, collections.abc.MutableSet, collections.abc.Collection,
    collections.abc.Iterable,
})


def _cattrs() -> Any:
    """cattrs, imported when a value is not plain or is wrong (oxi_core/plain_structure.py)."""
    import cattrs
    import cattrs.v

    return cattrs


def _structuring_errors() -> tuple[type[Exception], ...]:
    """What structuring raises for a bad value (evaluated only when something was raised)."""
    return (_cattrs().BaseValidationError, TypeError, ValueError, KeyError)


def _refuse_strings_as_arrays(converter: cattrs.Converter) -> None:
    generating: set[Any] = set()  # types whose default hook is being fetched right now

    def is_array(type_: Any) -> bool:
        try:
            return type_ not in generating and (typing.get_origin(type_) or type_) in _ARRAY_ORIGINS
        except TypeError:  # an unhashable type expression
            return False

    def factory(type_: Any) -> Callable[[Any, Any], Any]:
        generating.add(type_)
        try:
            default = converter.get_structure_hook(type_, cache_result=False)
        finally:
            generating.discard(type_)

        def hook(value: Any, target: Any) -> Any:
            if isinstance(value, str | bytes | Mapping):
                raise _Expected(f'expected a list such as ["a", "b"], got {_describe(value)}')
            return default(value, target)

        return hook

    converter.register_structure_hook_factory(is_array, factory)


class Structurer:
    """Structures oxi.toml values strictly, resolving Paths against ``base_dir``: plain values
    directly (oxi_core/plain_structure.py), anything else, and every value of the wrong shape,
    through a cattrs converter built on first need (which words the error)."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def resolve_path(self, value: str) -> Path:
        try:
            path = Path(value).expanduser()
        except RuntimeError as error:  # "~nobody/...": no such user
            raise _Expected(f"cannot expand {value!r}: {error}") from error
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def structure(self, value: Any, type_: Any) -> Any:
        found = structure_plain(value, type_, self.resolve_path)
        return self.converter.structure(value, type_) if found is UNSURE else found

    @cached_property
    def converter(self) -> cattrs.Converter:
        from cattrs.gen import make_dict_structure_fn

        converter: cattrs.Converter = _cattrs().Converter(forbid_extra_keys=True)
        converter.register_structure_hook(str, _strict(str, "a string"))
        converter.register_structure_hook(int, _strict(int, "an integer"))
        converter.register_structure_hook(float, _strict(float, "a number"))
        converter.register_structure_hook(bool, _strict(bool, "true or false"))

        def path_hook(value: Any, _type: Any) -> Path:
            if not isinstance(value, str):
                raise _Expected(f"expected a path string, got {_describe(value)}")
            return self.resolve_path(value)

        converter.register_structure_hook(Path, path_hook)
        _refuse_strings_as_arrays(converter)
        # Keys are the names __init__ takes (attrs strips a private field's underscore), which
        # is also what structure_kwargs checks unknown keys against.
        converter.register_structure_hook_factory(
            attrs.has,
            lambda cls: make_dict_structure_fn(
                cls, converter, _cattrs_forbid_extra_keys=True, _cattrs_use_alias=True
            ),
        )
        return converter


def make_converter(base_dir: Path) -> Structurer:
    """What checks oxi.toml's values strictly and resolves Paths against ``base_dir``."""
    return Structurer(base_dir)


_AT_PATH = r"^(?P<message>.*) @ \$(?P<path>.*)$"


def _format_exception(error: BaseException, type_: Any) -> str:
    if isinstance(error, _Expected):
        return str(error)
    message: str = _cattrs().v.format_exception(error, type_)
    return message


def _validator_failure(error: BaseException) -> tuple[str, str] | None:
    """An attrs validator's complaint (raised from __init__, so cattrs has no path for it)."""
    if isinstance(error, ValueError | TypeError) and len(error.args) >= 2 and isinstance(
        error.args[1], attrs.Attribute
    ):
        return error.args[1].alias or error.args[1].name, str(error.args[0])
    if isinstance(error, ValueError) and error.args and isinstance(error.args[0], str) and (
        not isinstance(error, _cattrs().BaseValidationError)
    ):
        # A hand-written validator: its message names the field; the key is not known.
        match = re.match(r"(?P<name>[A-Za-z_]\w*) ", error.args[0])
        return (match.group("name") if match else ""), error.args[0]
    for inner in getattr(error, "exceptions", ()):
        found = _validator_failure(inner)
        if found is not None:
            return found
    return None


def _config_error(
    error: Exception, *, file: str | None, table: str, key_prefix: str = ""
) -> ConfigError:
    """Turn a cattrs failure into one line naming the first offending key."""
    validator = _validator_failure(error)
    if validator is not None:
        name, message = validator
        return ConfigError(redact_text(message), file=file, table=table,
                           key=f"{key_prefix}{name}" if name else key_prefix.rstrip(".") or None)
    cattrs = _cattrs()
    messages = (
        cattrs.transform_error(error, format_exception=_format_exception)
        if isinstance(error, cattrs.BaseValidationError)
        else [f"{_format_exception(error, None)} @ $"]
    )
    first = messages[0] if messages else f"{error} @ $"
    match = re.match(_AT_PATH, first)
    message, path = (match.group("message"), match.group("path")) if match else (first, "")
    key = f"{key_prefix}{path.lstrip('.')}" if path else key_prefix.rstrip(".")
    extra = re.match(r"extra fields found \((?P<names>.*)\)", message)
    if extra:
        key = f"{key_prefix}{extra.group('names')}"
        message = "unknown key"
    elif message == "required field missing":
        message = "required key is missing"
    return ConfigError(message, file=file, table=table, key=key or None)


def structure_kwargs(
    cls: type[Any], kwargs: Mapping[str, Any], *, converter: Structurer,
    file: str | None, table: str, key_prefix: str = "",
) -> Any:
    """Build ``cls`` from kwargs: attrs classes through cattrs, others by their signature.

    ``key_prefix`` is where the kwargs sit in the table (``"kwargs."``), so errors name the key
    as the operator wrote it.
    """
    if attrs.has(cls):
        allowed = {a.alias for a in attrs.fields(cls) if a.init}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown key{did_you_mean(unknown[0], allowed)}; {cls.__name__} accepts "
                f"{', '.join(sorted(allowed)) or 'none'}",
                file=file, table=table, key=f"{key_prefix}{unknown[0]}",
            )
        _resolve_annotations(cls, file=file, table=table)
        try:
            return converter.structure(dict(kwargs), cls)
        except _structuring_errors() as error:
            raise _config_error(error, file=file, table=table, key_prefix=key_prefix) from error
    signature = inspect.signature(cls)
    hints = _resolve_annotations(cls, file=file, table=table)
    parameters = {n: p for n, p in signature.parameters.items() if n not in ("self",)}
    arguments: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name not in parameters:
            raise ConfigError(
                f"unknown key{did_you_mean(name, parameters)}; {cls.__name__} accepts "
                f"{', '.join(parameters) or 'none'}",
                file=file, table=table, key=f"{key_prefix}{name}",
            )
        hint = hints.get(name)
        try:
            arguments[name] = value if hint is None else converter.structure(value, hint)
        except _structuring_errors()[:3] as error:
            raise _config_error(error, file=file, table=table,
                                key_prefix=f"{key_prefix}{name}") from error
    for name, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and name not in arguments and (
            parameter.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                   inspect.Parameter.VAR_KEYWORD)
        ):
            raise ConfigError("required key is missing", file=file, table=table,
                              key=f"{key_prefix}{name}")
    return cls(**arguments)


def _resolve_annotations(cls: type[Any], *, file: str | None, table: str) -> dict[str, Any]:
    """The constructor's type hints; a name imported only under TYPE_CHECKING is reported."""
    try:
        if attrs.has(cls):
            attrs.resolve_types(cls)
            return {a.alias: a.type for a in attrs.fields(cls)}
        return typing.get_type_hints(cls.__init__)
    except NameError as error:
        raise ConfigError(
            f"cannot resolve the annotations of {cls.__module__}.{cls.__qualname__} ({error})",
            file=file, table=table,
            hint="the plugin must import the types its fields use at runtime, "
                 "not only under TYPE_CHECKING",
        ) from error


# Where each secret read through ``{ env = ... }`` came from, so that a plugin whose credential
# is refused can say which variable to fix (never the value).
_secret_origins: dict[str, str] = {}


def _where(file: str | None, table: str, key: str) -> str:
    return " ".join(part for part in (Path(file).name if file else None, f"[{table}]", key)
                    if part)


def secret_origin(value: str) -> str | None:
    """Where a secret a plugin received came from ("the environment variable NAME (oxi.toml
    [forges.github] kwargs.token)"), or None when it was not read through ``{ env = ... }``."""
    return _secret_origins.get(value)


def resolve_env(value: Any, *, file: str | None, table: str, key: str,
                unset: list[ConfigError] | None = None) -> Any:
    """Replace every ``{ env = "NAME" }`` with the environment's value (and mark it secret).

    A variable that is not set is an error, unless ``unset`` is given: then the error is added
    to it (and the value is None), for a caller that will not use what needs it."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = value["env"]
            if not isinstance(name, str) or not name:
                raise ConfigError("`env` must name an environment variable",
                                  file=file, table=table, key=key)
            secret = os.environ.get(name)
            if secret is None:
                error = ConfigError(
                    f"environment variable {name} is not set",
                    file=file, table=table, key=key,
                    hint=f"export {name}=... before running oxi, or remove the key",
                )
                if unset is None:
                    raise error
                unset.append(error)
                return None
            register_secret(secret)
            _secret_origins[secret] = (f"the environment variable {name} "
                                       f"({_where(file, table, key)})")
            return secret
        return {k: resolve_env(v, file=file, table=table, key=f"{key}.{k}" if key else k,
                               unset=unset)
                for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, file=file, table=table, key=key, unset=unset) for v in value]
    return value


# -- loading ------------------------------------------------------------------------------


def load_config(
    path: Path | None = None, *, cwd: Path | None = None, registry: Registry | None = None,
    secrets: bool = True,
) -> OxiConfig:
    """Load oxi.toml (or the embedded defaults when there is none) and build every plugin.

    ``secrets=False`` is for commands that only read the ledger or flip the killswitch: a
    plugin whose ``{ env = ... }`` variable is not set is then left unbuilt (its error kept in
    ``OxiConfig.unbuilt``) instead of failing the load; the engine refuses such a config."""
    from oxi_core.registry import get_registry

    registry = registry or get_registry()
    config_path = find_config(path, cwd)
    config_dir = config_path.parent if config_path else default_config_dir(cwd)
    text, data = read_toml_text(config_path) if config_path else ("", {})
    with errors_at_lines(text):
        return _load(data, config_path, config_dir, registry, secrets=secrets)


def _load(data: dict[str, Any], config_path: Path | None, config_dir: Path,
          registry: Registry, *, secrets: bool) -> OxiConfig:
    file = str(config_path) if config_path else None
    converter = make_converter(config_dir)
    adapter, paths = load_adapter(data, converter=converter, file=file, config_dir=config_dir)
    policy = _load_policy(adapter.policy(), data.get("engine", {}), converter, file)
    unbuilt: dict[str, ConfigError] = {}
    specs = {kind: _instance_specs(kind, data.get(kind, {}), registry, file,
                                   unbuilt=None if secrets else unbuilt)
             for kind in KIND_HOOKS}
    roles = _load_roles(data.get("roles", {}), file)
    shadow_env = os.environ.get("OXI_AGENTIC_SHADOW")
    if shadow_env:
        roles = attrs.evolve(roles, shadow=shadow_env)
    roles = _resolve_roles(roles, specs, registry, file)
    worktree = _load_worktree(data.get("worktree", {}), converter, file)
    check_heartbeat(policy, worktree, file)
    auto_improve = _load_auto_improve(data.get("auto_improve", {}), converter, file,
                                      configured_sources=specs["sources"])
    context = RuntimeContext(paths, config_dir, auto_improve)
    instances = {
        kind: {name: _build(spec, registry, converter, file, context)
               for name, spec in kind_specs.items() if f"{kind}.{name}" not in unbuilt}
        for kind, kind_specs in specs.items()
    }
    config = OxiConfig(config_path, config_dir, adapter, paths, policy, specs, instances, roles,
                       worktree, context, unbuilt)
    context.attach(config)
    return config


def default_config_dir(cwd: Path | None = None) -> Path:
    """Without an oxi.toml, the top of the git work tree holding ``cwd`` stands in for its
    folder. Outside any work tree there is nothing to run on, and nothing is created."""
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_work_tree_top(folder):
            return folder
    raise NotARepository(
        f"no {CONFIG_FILENAME} in {here} or a parent, and it is not inside a git repository",
        hint="cd into your repository (then `oxi init`), or pass --config PATH",
    )


def load_adapter(
    data: Mapping[str, Any], *, converter: Structurer, file: str | None, config_dir: Path
) -> tuple[RepositoryAdapter, RepoPaths]:
    """The repository adapter and its paths: all that finding the ledger needs (no plugins)."""
    for table in data:
        if table not in KNOWN_TABLES:
            raise ConfigError(f"unknown table{did_you_mean(table, KNOWN_TABLES)}; expected "
                              f"one of {', '.join(KNOWN_TABLES)}", file=file, table=table)
        if not isinstance(data[table], dict):
            raise ConfigError("expected a table", file=file, table=table)
    adapter = _load_adapter(data.get("adapter"), converter=converter, file=file,
                            config_dir=config_dir)
    paths = adapter.paths()
    if not paths.repo_root.is_dir():
        configured = "adapter" in data and "repo_root" in data["adapter"].get("kwargs", {})
        raise ConfigError(
            f"the repository root {paths.repo_root} does not exist",
            file=file, table="adapter", key="kwargs.repo_root" if configured else None,
            hint="point repo_root at your repository's folder (relative paths start at "
                 "the folder holding oxi.toml)",
        )
    return adapter, paths


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` for a likely misspelling of one of ``choices``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.8)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _load_adapter(
    table: Any, *, converter: Structurer, file: str | None, config_dir: Path
) -> RepositoryAdapter:
    if table is None:
        return _adapter_from_entry_points(config_dir, file)
    unknown = sorted(set(table) - {"class", "kwargs"})
    if unknown:
        raise ConfigError(f"unknown key{did_you_mean(unknown[0], ('class', 'kwargs'))}; "
                          "[adapter] takes `class` and `kwargs`",
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
    adapter = structure_kwargs(cls, kwargs, converter=converter, file=file, table="adapter",
                               key_prefix="kwargs.")
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
    from oxi_core.entrypoints import entry_points

    found = entry_points(ADAPTER_ENTRY_POINT_GROUP)
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
    base: Policy, table: Mapping[str, Any], converter: Structurer, file: str | None
) -> Policy:
    allowed = {field.name for field in attrs.fields(Policy)}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key{did_you_mean(key, allowed)}; [engine] accepts "
                              f"{', '.join(sorted(allowed))}",
                              file=file, table="engine", key=key)
    merged = {**attrs.asdict(base), **table}
    try:
        policy = converter.structure(merged, Policy) if table else base
    except _structuring_errors()[:2] as error:
        raise _config_error(error, file=file, table="engine") from error
    if policy.max_concurrent < 1:
        raise ConfigError("expected at least 1", file=file, table="engine", key="max_concurrent")
    if policy.budget_per_day_usd < 0:
        raise ConfigError("expected a positive number of dollars", file=file, table="engine",
                          key="budget_per_day_usd")
    return policy


# A heartbeat lease must outlast the longest silence a live worker may keep by this factor.
HEARTBEAT_MARGIN = 2.0


def longest_silence(policy: Policy, worktree: WorktreeSettings) -> tuple[str, float]:
    """The longest a live worker may legitimately go without a heartbeat, and what sets it:
    a worktree hook's timeout, the agent's start-up allowance or its stall timeout."""
    candidates = [("[engine] stall_timeout_s", policy.stall_timeout_s),
                  ("[engine] startup_timeout_s", policy.startup_timeout_s)]
    candidates += [(what, seconds) for name, hook in worktree.hooks.items()
                   for seconds, what in [hook.timeout(policy, name)]]
    return max(candidates, key=lambda candidate: candidate[1])


def check_heartbeat(policy: Policy, worktree: WorktreeSettings, file: str | None) -> None:
    """heartbeat_timeout_s must be well above the longest legal silence: a lease that expires
    sooner makes another host reap a claim whose worker is alive, and run its task twice."""
    what, silence = longest_silence(policy, worktree)
    needed = HEARTBEAT_MARGIN * silence
    if policy.heartbeat_timeout_s < needed:
        raise ConfigError(
            f"heartbeat_timeout_s = {policy.heartbeat_timeout_s:g} s is not well above the "
            f"longest a live worker may stay silent: {what} = {silence:g} s",
            file=file, table="engine", key="heartbeat_timeout_s",
            hint=f"set heartbeat_timeout_s to at least {needed:g} s (twice that), or lower "
                 "that timeout",
        )


def _instance_specs(
    kind: str, table: Mapping[str, Any], registry: Registry, file: str | None, *,
    unbuilt: dict[str, ConfigError] | None = None,
) -> dict[str, InstanceSpec]:
    """Each configured instance; with ``unbuilt``, one whose secret is not set is noted there
    (by "kind.name") instead of failing."""
    specs: dict[str, InstanceSpec] = {}
    for name, body in table.items():
        where = f"{kind}.{name}"
        if not isinstance(body, dict):
            raise ConfigError("expected a table with `type` and `kwargs`", file=file, table=where)
        unknown = sorted(set(body) - INSTANCE_KEYS)
        if unknown:
            raise ConfigError(f"unknown key{did_you_mean(unknown[0], INSTANCE_KEYS)}; "
                              "expected `type`, `kwargs` or `trust`",
                              file=file, table=where, key=unknown[0])
        type_name = body.get("type", name)
        if not isinstance(type_name, str):
            raise ConfigError("expected a string", file=file, table=where, key="type")
        registration = registry.get(kind, type_name)
        if registration is None:
            installed = ", ".join(registry.names(kind)) or "none"
            provider = KNOWN_DISTRIBUTIONS.get(type_name)
            raise ConfigError(
                f"unknown {kind[:-1] if kind.endswith('s') else kind} type {type_name!r}"
                f"{did_you_mean(type_name, registry.names(kind))}; installed: {installed}",
                file=file, table=where, key="type",
                hint=(f"pip install {provider}" if provider else
                      "pip install the plugin that provides it (see `oxi plugins`)"),
            )
        kwargs = body.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ConfigError("expected a table", file=file, table=where, key="kwargs")
        trust = body.get("trust", "normal")
        if trust not in TRUST_LEVELS:
            raise ConfigError(f"expected one of {', '.join(TRUST_LEVELS)}",
                              file=file, table=where, key="trust")
        unset: list[ConfigError] | None = None if unbuilt is None else []
        resolved = resolve_env(kwargs, file=file, table=where, key="kwargs", unset=unset)
        if unset and unbuilt is not None:
            unbuilt[where] = unset[0]
        specs[name] = InstanceSpec(kind, name, type_name, resolved, trust,
                                   registration.distribution)
    return specs


def _build(
    spec: InstanceSpec, registry: Registry, converter: Structurer, file: str | None,
    context: RuntimeContext,
) -> Any:
    registration = registry.get(spec.kind, spec.type)
    assert registration is not None
    where = f"{spec.kind}.{spec.name}"
    instance = structure_kwargs(registration.cls, spec.kwargs, converter=converter, file=file,
                                table=where, key_prefix="kwargs.")
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


def _load_roles(table: Mapping[str, Any], file: str | None) -> Roles:
    allowed = {field.name for field in attrs.fields(Roles)}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown role{did_you_mean(key, allowed)}; expected "
                              f"{', '.join(sorted(allowed))}",
                              file=file, table="roles", key=key)
    rest = dict(table)
    critic = rest.pop("critic", None)
    if isinstance(critic, list):
        if not critic or not all(isinstance(name, str) and name for name in critic):
            raise ConfigError('expected a judge name or a list of them, such as ["tests", '
                              '"review"]', file=file, table="roles", key="critic")
        critic = tuple(dict.fromkeys(critic)) if len(critic) > 1 else critic[0]
    elif critic is not None and not isinstance(critic, str):
        raise ConfigError(f"expected a judge name or a list of them, got {critic!r}",
                          file=file, table="roles", key="critic")
    for key, value in rest.items():
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_describe(value)}", file=file,
                              table="roles", key=key)
    return Roles(critic=critic, **rest)


# Where the plugins oxi knows of live, for "unknown type" errors.
KNOWN_DISTRIBUTIONS: Mapping[str, str] = {
    "claude": "oxi-claude", "codex": "oxi-codex", "grok": "oxi-grok",
    "openrouter": "oxi-openrouter", "github": "oxi-github", "newsletter": "oxi-newsletter",
    "x": "oxi-x",
}


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
        configured_types = {spec.type for spec in specs[kind].values()}
        for name in names:
            # Defaults stay on beside what the operator adds (a second gate must not silently
            # drop the budget gate); forges are exclusive, so only when none is configured.
            if name in configured_types or name in specs[kind] or (
                kind == "forges" and specs[kind]
            ):
                continue
            registration = registry.get(kind, name)
            if registration is not None:
                specs[kind][name] = InstanceSpec(kind, name, name, {}, "normal",
                                                 registration.distribution)
    forge = roles.forge or next(iter(specs["forges"]), None)
    if roles.worker is None and len(specs["agents"]) > 1:
        raise ConfigError(
            f"several agents are configured ({', '.join(specs['agents'])}) and none is the "
            "worker", file=file, table="roles", key="worker",
            hint='set [roles] worker = "NAME"',
        )
    worker = roles.worker or (next(iter(specs["agents"])) if len(specs["agents"]) == 1 else None)
    critic = roles.critic or (next(iter(specs["judges"])) if len(specs["judges"]) == 1 else None)
    resolved = Roles(worker=worker, critic=critic, forge=forge, shadow=roles.shadow)
    for role, kind in (("worker", "agents"), ("critic", "judges"), ("forge", "forges"),
                       ("shadow", "agents")):
        value = getattr(resolved, role)
        for name in (value if isinstance(value, tuple) else (value,)):
            if name is None or name in specs[kind]:
                continue
            registration = registry.get(kind, name)
            if registration is None:
                configured = ", ".join(specs[kind]) or "none"
                raise ConfigError(
                    f"names {name!r}, which is not configured{did_you_mean(name, specs[kind])}; "
                    f"configured {kind}: {configured}",
                    file=file, table="roles", key=role,
                    hint=f"add [{kind}.{name}] with a type and kwargs",
                )
            specs[kind][name] = InstanceSpec(kind, name, name, {}, "normal",
                                             registration.distribution)
    if resolved.forge is None:
        raise ConfigError("no forge is configured", file=file, table="forges",
                          hint='add [forges.local] type = "local"')
    return resolved


def _load_auto_improve(
    table: Mapping[str, Any], converter: Structurer, file: str | None, *,
    configured_sources: Mapping[str, InstanceSpec],
) -> AutoImproveSettings | None:
    """The [auto_improve] table; None without one (the defaults, built on first use: every
    command that loads oxi.toml would otherwise pay for a class most never read)."""
    if not table:
        return None
    from oxi_core.auto_improve.settings import AutoImproveSettings

    settings: AutoImproveSettings = structure_kwargs(
        AutoImproveSettings, table, converter=converter, file=file, table="auto_improve")
    for name in settings.sources or ():
        if name not in configured_sources:
            raise ConfigError(
                f"names source {name!r}, which is not configured; configured sources: "
                f"{', '.join(configured_sources) or 'none'}",
                file=file, table="auto_improve", key="sources",
                hint=f"add [sources.{name}] with a type and kwargs, or drop it from the list")
    return settings


def _load_worktree(
    table: Mapping[str, Any], converter: Structurer, file: str | None
) -> WorktreeSettings:
    unknown = sorted(set(table) - {"hooks"})
    if unknown:
        raise ConfigError(f"unknown key{did_you_mean(unknown[0], ('hooks',))}; [worktree] "
                          "takes `hooks`", file=file, table="worktree",
                          key=unknown[0])
    hooks_table = table.get("hooks", {})
    if not isinstance(hooks_table, dict):
        raise ConfigError("expected a table of hooks such as [worktree.hooks]", file=file,
                          table="worktree", key="hooks")
    hooks: dict[str, HookCommand] = {}
    for name, body in hooks_table.items():
        where = f"worktree.hooks.{name}"
        if name not in HOOK_NAMES:
            raise ConfigError(f"unknown hook{did_you_mean(name, HOOK_NAMES)}; expected one of "
                              f"{', '.join(HOOK_NAMES)}",
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
