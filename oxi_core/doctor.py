"""`oxi config check` and `oxi doctor`: every check of a setup lives here, one small function
each, so the first tick meets nothing a check could have named.

A check takes the loaded configuration and returns Findings: one line each, naming the key and
the fix. ``@check(name)`` registers one; ``deep=True`` marks a check that is slow or talks to the
network (a self-test, a health probe), which only `oxi doctor` runs: `oxi config check` stays
fast and offline. A plugin adds its own through an optional method on its registered class,
``diagnose(deep: bool) -> Iterable[Finding]`` (``validate()``, which raises, still works).
"""

from __future__ import annotations

import enum
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from oxi_core.config import OxiConfig


class Severity(enum.StrEnum):
    ERROR = "error"  # the first tick would fail on it
    WARNING = "warning"  # works, but probably not as meant


@attrs.frozen
class Finding:
    severity: Severity
    where: str  # the key it is about: "[agents.script] kwargs.argv", "repository", "roadmap.md:4"
    problem: str
    fix: str
    check: str = ""  # the check that found it (filled in by run_checks)

    @classmethod
    def error(cls, where: str, problem: str, fix: str) -> Finding:
        return cls(Severity.ERROR, where, problem, fix)

    @classmethod
    def warning(cls, where: str, problem: str, fix: str) -> Finding:
        return cls(Severity.WARNING, where, problem, fix)

    def line(self) -> str:
        return f"{self.severity}: {self.where}: {self.problem}; fix: {self.fix}"

    def as_json(self) -> dict[str, str]:
        return {"severity": str(self.severity), "where": self.where, "problem": self.problem,
                "fix": self.fix, "check": self.check}


CheckFunction = Callable[[OxiConfig], Iterable[Finding]]


@attrs.frozen
class Check:
    name: str
    function: CheckFunction
    deep: bool = False


CHECKS: list[Check] = []


def check(name: str, *, deep: bool = False) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check; ``deep`` ones (slow, or online) run only under `oxi doctor`."""

    def register(function: CheckFunction) -> CheckFunction:
        CHECKS.append(Check(name, function, deep))
        return function

    return register


def run_checks(config: OxiConfig, *, deep: bool = False) -> list[Finding]:
    """Every registered check, then each plugin instance's own; a check that crashes is itself
    a finding (a broken check must not hide the others)."""
    findings: list[Finding] = []
    for spec in CHECKS:
        if spec.deep and not deep:
            continue
        findings.extend(_guarded(spec.name, spec.function, config))
    for kind, instances in config.instances.items():
        for name, instance in instances.items():
            findings.extend(_guarded(f"{kind}.{name}", _plugin_findings, instance,
                                     f"{kind}.{name}", deep))
    return findings


def _guarded(name: str, body: Callable[..., Iterable[Finding]], *args: Any) -> list[Finding]:
    from oxi_core.errors import OxiError

    try:
        return [attrs.evolve(f, check=f.check or name) for f in body(*args)]
    except OxiError as error:
        return [Finding.error(name, str(error), "see the message")]
    except Exception as error:
        return [Finding(Severity.ERROR, name, f"the check crashed: {type(error).__name__}: "
                        f"{error}", "report this as a bug in the check", name)]


def _plugin_findings(instance: Any, where: str, deep: bool) -> Iterator[Finding]:
    validate = getattr(instance, "validate", None)
    # A binary that is missing is reported as "not found" by the programs check; its
    # validate() would only add a confusing "version unknown".
    if callable(validate) and not _binary_missing(instance):
        from oxi_core.errors import OxiError

        try:
            validate()
        except OxiError as error:
            yield Finding.error(f"[{where}]", error.message, error.hint or "see the message")
    diagnose = getattr(instance, "diagnose", None)
    if callable(diagnose):
        yield from diagnose(deep)


# -- programs: agents, critics, hooks ------------------------------------------------------


def _search_path() -> str:
    return os.environ.get("PATH", os.defpath)


def program_problem(program: str, repo_root: Path, base_ref: str) -> str | None:
    """Why ``program`` (an argv[0]) cannot run in a worktree, or None.

    A bare name is looked up on PATH; a relative path runs from the worktree, which is a
    checkout of the base branch, so the file must be committed there, not only present here.
    """
    if "/" not in program:
        return binary_problem(program)
    path = Path(program).expanduser()
    if path.is_absolute():
        if not path.exists():
            return f"{program} not found"
        return None if os.access(path, os.X_OK) else f"{program} is not executable"
    local = repo_root / path
    if not local.exists():
        return f"{program} not found in the repository ({local})"
    if not os.access(local, os.X_OK):
        return f"{program} is not executable (chmod +x {program}, then commit it)"
    from oxi_core import git

    relative = os.path.normpath(path.as_posix())
    tracked = git.git(["cat-file", "-e", f"{base_ref}:{relative}"], repo_root, check=False)
    if tracked.returncode != 0:
        return (f"{program} is not committed on {base_ref}: worktrees are checkouts of it, so "
                "the agent would not find it (commit and push it)")
    return None


def python_module_problem(argv: tuple[str, ...], repo_root: Path) -> str | None:
    """``PYTHON -m MODULE ...``: whether that interpreter has the module (pytest, say)."""
    if len(argv) < 3 or argv[1] != "-m" or "python" not in Path(argv[0]).name:
        return None
    interpreter = argv[0]
    if "/" not in interpreter:
        found = shutil.which(interpreter, path=_search_path())
        if found is None:
            return None  # reported as "not found" already
        interpreter = found
    elif not Path(interpreter).is_absolute():
        interpreter = str(repo_root / interpreter)
    module = argv[2]
    try:
        done = subprocess.run(
            [interpreter, "-c", "import importlib.util, sys; "
             f"sys.exit(3 if importlib.util.find_spec({module!r}) is None else 0)"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return f"{argv[0]} ({interpreter}) cannot run: {error}"
    if done.returncode == 3:
        return f"{argv[0]} ({interpreter}) has no module {module}"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{argv[0]} ({interpreter}) cannot run: {tail}"
    return None


def _base_ref(config: OxiConfig) -> str:
    return f"{config.policy.remote}/{config.policy.base_branch}"


def _binary_missing(instance: Any) -> bool:
    binary = getattr(instance, "binary", None)
    return isinstance(binary, str) and bool(binary) and binary_problem(binary) is not None


def binary_problem(binary: str) -> str | None:
    path = Path(binary).expanduser()
    if "/" in binary:
        return None if path.exists() else f"{binary} not found"
    return None if shutil.which(binary, path=_search_path()) else f"{binary} not found on PATH"


# -- the core checks -----------------------------------------------------------------------


@check("config_file")
def check_config_file(config: OxiConfig) -> Iterator[Finding]:
    if config.path is None:
        yield Finding.warning("oxi.toml", "there is none: oxi runs on its embedded defaults, "
                              "with no worker agent", "run `oxi init`")
        return
    from oxi_core.config import read_toml

    if not read_toml(config.path):
        yield Finding.error(str(config.path), "the file is empty: nothing is configured",
                            "run `oxi init --force` to write a starter file, or add "
                            "[agents.NAME] and [roles] worker")


@check("repository")
def check_repository(config: OxiConfig) -> Iterator[Finding]:
    from oxi_core import git

    root = config.paths.repo_root
    inside = git.git(["rev-parse", "--show-toplevel"], root, check=False)
    if inside.returncode != 0:
        yield Finding.error("[adapter] kwargs.repo_root", f"{root} is not a git work tree",
                            "point repo_root at a clone of your repository (or `git init` it)")
        return
    remote = config.policy.remote
    if git.git(["remote", "get-url", remote], root, check=False).returncode != 0:
        yield Finding.error("[engine] remote", f"the repository has no remote named {remote!r}",
                            f"`git remote add {remote} URL`, or set [engine] remote")
        return
    base = config.policy.base_branch
    if git.rev_parse(f"refs/remotes/{remote}/{base}", root) is None:
        yield Finding.error(
            "[engine] base_branch", f"{remote} has no branch {base!r} (as last fetched)",
            f"push it (`git push {remote} {base}`) and `git fetch {remote}`, or set "
            "[engine] base_branch")


@check("roadmap")
def check_roadmap(config: OxiConfig) -> Iterator[Finding]:
    from oxi_core.errors import RoadmapError
    from oxi_core.roadmap import load_roadmap

    path = config.paths.roadmap
    try:
        roadmap = load_roadmap(path)
    except RoadmapError as error:
        yield Finding.error("[adapter] kwargs.roadmap", error.message,
                            error.hint or "write roadmap.md")
        return
    for problem in roadmap.errors:
        yield Finding.error(f"{path.name}:{problem.line}", problem.message,
                            "see docs/roadmap-format.md (`oxi roadmap lint` lists all)")
    if not roadmap.open_items:
        yield Finding.warning(path.name, "no open items: a tick has nothing to dispatch",
                              "add items shaped **T1-1 · title** (docs/roadmap-format.md)")


@check("plugins")
def check_plugins(config: OxiConfig) -> Iterator[Finding]:
    """Every installed plugin loads, those oxi.toml does not use included (a command imports
    only what it uses, so a broken one would otherwise surface when first configured)."""
    from oxi_core.registry import get_registry

    registry = get_registry()
    registry.load_all()
    for failure in registry.failures:
        yield Finding.warning(
            f"plugin {failure.name} ({failure.distribution} {failure.version})", failure.error,
            f"reinstall {failure.distribution}, or uninstall it if you do not use it")


@check("roles")
def check_roles(config: OxiConfig) -> Iterator[Finding]:
    if config.roles.worker is None:
        yield Finding.error("[roles] worker", "no worker agent is configured",
                            'add [agents.NAME] with a type, and [roles] worker = "NAME"')
    if config.roles.critic is None:
        yield Finding.warning("[roles] critic", "no critic: pull requests wait for a person",
                              "add [judges.tests] type = \"command\" with your test command")


@check("git")
def check_git(config: OxiConfig) -> Iterator[Finding]:
    """The local forge merges with `git merge-tree --write-tree`: git 2.38 or newer."""
    forge = config.specs["forges"].get(config.roles.forge or "")
    if forge is None or forge.type != "local":
        return
    from oxi_core.git_version import UPGRADE, merge_tree_problem

    problem = merge_tree_problem(config.paths.state_dir)
    if problem is not None:
        yield Finding.error("git", problem, UPGRADE)


@check("programs")
def check_programs(config: OxiConfig) -> Iterator[Finding]:
    """Every program oxi will start: agents' binaries and argv, critics' commands, hooks."""
    root = config.paths.repo_root
    base = _base_ref(config)
    for name, agent in config.instances["agents"].items():
        binary = getattr(agent, "binary", None)
        if isinstance(binary, str) and binary:
            problem = binary_problem(binary)
            if problem:
                yield Finding.error(f"[agents.{name}] kwargs.binary", problem,
                                    "install it, or set kwargs.binary to its path")
        argv = getattr(agent, "argv", None)
        if isinstance(argv, tuple) and argv and isinstance(argv[0], str):
            problem = program_problem(argv[0], root, base)
            if problem:
                yield Finding.error(
                    f"[agents.{name}] kwargs.argv", problem,
                    "write the agent script (it gets the prompt in $OXI_PROMPT), commit and "
                    "push it; or install claude or codex and run `oxi init --force`")
    for name, judge in config.instances["judges"].items():
        for index, argv in enumerate(getattr(judge, "commands", ()) or ()):
            where = f"[judges.{name}] kwargs.commands[{index}]"
            problem = program_problem(argv[0], root, base) if argv else "an empty command"
            problem = problem or python_module_problem(tuple(argv), root)
            if problem:
                yield Finding.error(where, problem,
                                    "name a command that runs your tests in a fresh checkout "
                                    "(e.g. [\"uv\", \"run\", \"pytest\"]), or install what it "
                                    "needs")
    for hook_name, hook in config.worktree.hooks.items():
        problem = program_problem(hook.argv[0], root, base)
        if problem:
            yield Finding.error(f"[worktree.hooks] {hook_name}", problem,
                                "install it, or fix the hook's argv")


@check("paths")
def check_path_kwargs(config: OxiConfig) -> Iterator[Finding]:
    """Every Path kwarg of every plugin names something that exists (one the plugin makes on
    first use, marked ``metadata={"created_on_use": True}``, needs only a folder to go in)."""
    for kind, instances in config.instances.items():
        for name, instance in instances.items():
            if not attrs.has(type(instance)):
                continue
            for field in attrs.fields(type(instance)):
                value = getattr(instance, field.name, None)
                if not field.init or not isinstance(value, Path):
                    continue
                made = bool(field.metadata.get("created_on_use"))
                if value.exists() or (made and _nearest_existing(value).is_dir()):
                    continue
                yield Finding.error(f"[{kind}.{name}] kwargs.{field.alias or field.name}",
                                    f"{value} does not exist",
                                    "create it, or fix the path (relative paths start at the "
                                    "folder holding oxi.toml)")


def _nearest_existing(path: Path) -> Path:
    return next(parent for parent in path.parents if parent.exists())



@check("routing")
def check_routing(config: OxiConfig) -> Iterator[Finding]:
    """routing.yaml loads, and every model-backed role oxi will use reaches a configured
    inference target (the `llm` critic, heartbeat triage)."""
    from oxi_core.inference.routing import RoutingError, load_routing

    try:
        routing = load_routing(config.config_dir)
    except RoutingError as error:
        # The message names the file, the line and the key.
        yield Finding.error("routing.yaml", error.message, error.hint or "fix the file")
        return
    used = []
    if any(spec.type == "llm" for spec in config.specs["judges"].values()):
        used.append(("critic", "an `llm` judge is configured"))
    if config.policy.triage:
        used.append(("heartbeat-triage", "[engine] triage = true"))
    targets = config.specs.get("inference", {})
    for role, why in used:
        chain = routing.route_for(role).chain
        if not any(ref.adapter_name in targets for ref in chain):
            wanted = ", ".join(ref.label() for ref in chain)
            yield Finding.error(
                f"routing.yaml roles.{role}",
                f"{why}, but the role routes to {wanted}, and oxi.toml configures no such "
                "inference target",
                '[inference.gateway] type = "litellm" with its base_url, or route the role '
                "to a target you configure")


@check("inference_gateways", deep=True)
def check_gateways(config: OxiConfig) -> Iterator[Finding]:
    """Every gateway answers its liveness route (skipped with OXI_INFERENCE_OFFLINE=1)."""
    from oxi_core.inference.health import OFFLINE_ENV, gateway_health

    for health in gateway_health(config):
        if not health.ok:
            yield Finding.error(
                f"[inference.{health.target}] kwargs.base_url",
                f"the gateway does not answer {health.url}: {health.detail}",
                f"start it or fix base_url; callers degrade without it (see "
                f"docs/runbooks/litellm-gateway.md); {OFFLINE_ENV}=1 skips this check")
