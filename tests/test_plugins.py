"""Plugins: built-ins, third-party distributions found through entry points, and their failures.

Third-party plugins are real distributions built on the fly with uv and installed into a
folder of their own that the child processes get on PYTHONPATH: entry points are found exactly
as in site-packages, and the shared .venv (which other test runs use at the same time) never
sees a broken plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from click.testing import CliRunner

from oxi_core import __version__, hookspecs
from oxi_core.cli import cli
from oxi_core.errors import PluginError
from oxi_core.hookspecs import KIND_HOOKS, hookimpl
from oxi_core.plugins import BUILTIN_PLUGINS, LoadedPlugins, PluginInfo, load_plugins, reset_plugins
from oxi_core.registry import build_registry, get_registry

BIN = Path(sys.executable).parent
OXI = BIN / "oxi"
UV = BIN / "uv"
BUILTIN_NAMES = {
    "agents": ["exec"],
    "forges": ["local"],
    "gates": ["budget", "file_overlap"],
    "inference": ["litellm"],
    "judges": ["command", "llm"],
    "notifiers": ["log", "webhook"],
}

MINE_PLUGIN = '''
"""An agent whose kwargs are a Path and an int."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from oxi_core.agentic.types import DispatchRequest, DispatchResult, Usage
from oxi_core.hookspecs import KIND_HOOKS, hookimpl
from oxi_core.models import Classification


@attrs.define
class MineAgent:
    workdir: Path
    turns: int = 1

    async def invoke(self, request: DispatchRequest) -> DispatchResult:
        return DispatchResult(Classification.SUCCESS, turns=self.turns)

    def version(self) -> str:
        return "1.2.3"

    def model_id(self) -> str:
        return "mine"

    def usage_normalizer(self, raw: Mapping[str, Any]) -> Usage:
        return Usage()

    def tool_translator(self, name: str) -> str:
        return name


@hookimpl
def register_agents(register):
    register("mine", MineAgent)
'''

OTHER_PLUGIN = """
import attrs

from oxi_core.hookspecs import KIND_HOOKS, hookimpl


@attrs.define
class OtherNotifier:
    def notify(self, event):
        pass


@hookimpl
def register_notifiers(register):
    register("other", OtherNotifier)
"""

BROKEN_PLUGIN = """
raise RuntimeError("the broken plugin cannot start")
"""

FORK_PLUGIN = """
from oxi_core.hookspecs import KIND_HOOKS, hookimpl


@hookimpl
def register_gates(register):
    pass
"""

# Registered by where they live: imported only when an oxi.toml uses them.
LAZY_PLUGIN = """
from oxi_core.hookspecs import hookimpl


@hookimpl
def register_agents(register):
    register("lazy", "oxi_lazy.heavy:LazyAgent")
    register("lazy_broken", "oxi_lazy.missing:Nope")
"""

LAZY_HEAVY = """
import attrs

IMPORTED = True


@attrs.define
class LazyAgent:
    turns: int = 1

    def version(self):
        return "1"
"""

TYPO_PLUGIN = """
from oxi_core.hookspecs import KIND_HOOKS, hookimpl


@hookimpl
def register_agent(register):  # not a hook: register_agents
    pass
"""


def write_distribution(
    root: Path, distribution: str, version: str, source: str, entry_point: str | None = None,
    modules: dict[str, str] | None = None,
) -> Path:
    """A source tree for ``oxi-<name>``: package ``oxi_<name>``, module ``plugin`` (and
    ``modules``, by name)."""
    package = distribution.replace("-", "_")
    name = entry_point or distribution.removeprefix("oxi-")
    folder = root / distribution
    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text("", encoding="utf-8")
    (folder / package / "plugin.py").write_text(textwrap.dedent(source), encoding="utf-8")
    for module, text in (modules or {}).items():
        (folder / package / f"{module}.py").write_text(textwrap.dedent(text), encoding="utf-8")
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
            [project]
            name = "{distribution}"
            version = "{version}"
            requires-python = ">=3.11"
            dependencies = ["oxi-engine"]

            [project.entry-points.oxi]
            {name} = "{package}.plugin"

            [build-system]
            requires = ["hatchling>=1.24"]
            build-backend = "hatchling.build"

            [tool.hatch.build.targets.wheel]
            packages = ["{package}"]
        """),
        encoding="utf-8",
    )
    return folder


def install(target: Path, sources: list[Path]) -> subprocess.Popen[str]:
    """Build and install distributions into ``target`` (a site folder); the caller waits."""
    argv = [str(UV), "pip", "install", "--quiet", "--python", sys.executable, "--no-deps"]
    return subprocess.Popen(
        [*argv, "--target", str(target), *map(str, sources)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``main``: oxi-mine, oxi-other and oxi-broken; ``clashing``: oxi-mine-fork, oxi-typo;
    ``lazy``: oxi-lazy."""
    root = tmp_path_factory.mktemp("distributions")
    main, clashing, lazy = root / "site-main", root / "site-clashing", root / "site-lazy"
    jobs = [
        install(
            main,
            [
                write_distribution(root, "oxi-mine", "1.2.3", MINE_PLUGIN),
                write_distribution(root, "oxi-other", "0.3.0", OTHER_PLUGIN),
                write_distribution(root, "oxi-broken", "0.0.1", BROKEN_PLUGIN),
            ],
        ),
        install(
            clashing,
            [
                write_distribution(root, "oxi-mine-fork", "9.0.0", FORK_PLUGIN, entry_point="mine"),
                write_distribution(root, "oxi-typo", "0.1.0", TYPO_PLUGIN),
            ],
        ),
        install(lazy, [write_distribution(root, "oxi-lazy", "0.2.0", LAZY_PLUGIN,
                                          modules={"heavy": LAZY_HEAVY})]),
    ]
    for job in jobs:
        output, _ = job.communicate(timeout=180)
        assert job.returncode == 0, output
    return {"main": main, "clashing": clashing, "lazy": lazy}


@pytest.fixture(scope="module")
def main_listing(sites: dict[str, Path]) -> dict[str, Any]:
    """``oxi plugins --json`` with every plugin of the main site installed."""
    return plugins_json([sites["main"]])


def run(
    argv: list[str],
    pythonpath: list[Path],
    *,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a child with ``pythonpath`` first on sys.path and no OXI_* settings but ``extra_env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXI_")}
    env.pop("PYTEST_CURRENT_TEST", None)  # the child is not under pytest
    env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**env, **(extra_env or {})},
        cwd=cwd,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def plugins_json(pythonpath: list[Path], **extra_env: str) -> dict[str, Any]:
    result = run([str(OXI), "plugins", "--json"], pythonpath, extra_env=extra_env)
    assert result.returncode == 0, result.stderr
    listing: dict[str, Any] = json.loads(result.stdout)
    listing["stderr"] = result.stderr
    return listing


def by_distribution(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["distribution"]: row for row in rows}


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process tests rebuild the process-wide plugin manager, and leave it to be rebuilt."""
    for name in [k for k in os.environ if k.startswith("OXI_")]:
        monkeypatch.delenv(name)
    reset_plugins()
    yield
    reset_plugins()


# -- built-ins -------------------------------------------------------------------------------


def test_the_builtins_load_and_register_their_names(
    fresh_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXI_LOAD_PLUGINS", "")

    loaded = load_plugins()
    registry = get_registry()

    assert set(loaded.infos) == set(BUILTIN_PLUGINS)
    assert all(info.builtin and info.distribution == "oxi-engine" for info in loaded.infos.values())
    assert {kind: registry.names(kind) for kind in BUILTIN_NAMES} == BUILTIN_NAMES
    assert registry.failures == []


def test_oxi_plugins_json_lists_the_builtins_distribution_version_hooks_and_names(
    fresh_plugins: None,
) -> None:
    result = CliRunner().invoke(cli, ["plugins", "--json"], env={"OXI_LOAD_PLUGINS": ""})

    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert listing == {
        "version": 1,
        "command": "plugins",
        "failures": [],
        # Repository adapters are listed too (OXI_LOAD_PLUGINS does not choose them).
        "adapters": [{"class": "oxi_adapter_self.SelfAdapter", "distribution": "oxi-adapter-self",
                      "name": "self", "version": __version__}],
        "plugins": [
            {
                "builtin": True,
                "distribution": "oxi-engine",
                "version": __version__,
                "name": "oxi_core.builtins.hooks",
                "hooks": sorted(KIND_HOOKS[kind] for kind in BUILTIN_NAMES),
                "registered": BUILTIN_NAMES,
            }
        ],
    }


# -- third-party distributions ---------------------------------------------------------------


def test_an_installed_plugin_is_listed_with_its_distribution_version_hooks_and_names(
    main_listing: dict[str, Any],
) -> None:
    mine = by_distribution(main_listing["plugins"])["oxi-mine"]
    assert mine == {
        "builtin": False,
        "distribution": "oxi-mine",
        "version": "1.2.3",
        "name": "mine",
        "hooks": ["register_agents"],
        "registered": {"agents": ["mine"]},
    }
    assert main_listing["plugins"][0]["distribution"] == "oxi-engine"  # the built-ins come first


def test_an_installed_plugins_agent_is_built_from_oxi_toml_with_paths_relative_to_the_toml(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    toml = project / "oxi.toml"
    toml.write_text(
        '[agents.mine]\ntype = "mine"\nkwargs = { workdir = "sub/dir", turns = 3 }\n',
        encoding="utf-8",
    )
    show = textwrap.dedent(f"""\
        import json, sys
        from pathlib import Path
        from oxi_core.config import load_config
        config = load_config(Path({str(toml)!r}))
        agent = config.instance("agents", "mine")
        json.dump({{"class": type(agent).__module__ + "." + type(agent).__name__,
                   "workdir": str(agent.workdir), "turns": agent.turns,
                   "worker": config.roles.worker}}, sys.stdout)
    """)

    built = run([sys.executable, "-c", show], [sites["main"]], cwd=elsewhere)
    checked = run(
        [str(OXI), "--config", str(toml), "config", "check", "--json"],
        [sites["main"]],
        cwd=elsewhere,
    )

    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout) == {
        "class": "oxi_mine.plugin.MineAgent",
        "workdir": str(project.resolve() / "sub" / "dir"),
        "turns": 3,
        "worker": "mine",
    }
    checked_report = json.loads(checked.stdout)
    assert checked.returncode == 1, checked.stderr  # not a repository: the checks say so
    assert "[adapter] kwargs.repo_root" in [f["where"] for f in checked_report["findings"]]
    agents = checked_report["instances"]["agents"]
    assert agents == {"mine": {"type": "mine", "distribution": "oxi-mine", "trust": "normal"}}


def test_a_plugin_that_fails_to_import_is_reported_and_the_others_still_load(
    main_listing: dict[str, Any],
) -> None:
    listing = main_listing  # `oxi plugins --json` exited 0

    # The workspace's own plugins (oxi-claude, oxi-codex) are installed too; they load as well.
    assert set(by_distribution(listing["plugins"])) >= {"oxi-engine", "oxi-mine", "oxi-other"}
    assert "oxi-broken" not in by_distribution(listing["plugins"])
    assert listing["failures"] == [
        {
            "name": "broken",
            "distribution": "oxi-broken",
            "version": "0.0.1",
            "error": "RuntimeError: the broken plugin cannot start",
        }
    ]
    assert "oxi-broken" in listing["stderr"]
    assert "the broken plugin cannot start" in listing["stderr"]


@pytest.mark.parametrize("wanted", ["oxi-mine", "oxi_Mine", "mine"])
def test_oxi_load_plugins_loads_only_the_named_plugin_and_the_builtins(
    sites: dict[str, Path], wanted: str
) -> None:
    listing = plugins_json([sites["main"]], OXI_LOAD_PLUGINS=wanted)

    assert set(by_distribution(listing["plugins"])) == {"oxi-engine", "oxi-mine"}
    assert listing["failures"] == []


def test_an_empty_oxi_load_plugins_loads_no_third_party_plugin(sites: dict[str, Path]) -> None:
    listing = plugins_json([sites["main"]], OXI_LOAD_PLUGINS="")

    assert set(by_distribution(listing["plugins"])) == {"oxi-engine"}
    assert listing["failures"] == []


def test_a_second_distribution_using_a_taken_entry_point_name_is_reported(
    sites: dict[str, Path],
) -> None:
    listing = plugins_json([sites["main"], sites["clashing"]], OXI_LOAD_PLUGINS="mine")

    assert by_distribution(listing["plugins"])["oxi-mine"]["version"] == "1.2.3"
    assert listing["failures"] == [
        {
            "name": "mine",
            "distribution": "oxi-mine-fork",
            "version": "9.0.0",
            "error": "the entry point name 'mine' is already used by distribution oxi-mine",
        }
    ]


def test_a_hookimpl_that_matches_no_hook_is_reported(sites: dict[str, Path]) -> None:
    listing = plugins_json([sites["clashing"]], OXI_LOAD_PLUGINS="oxi-typo")

    [failure] = listing["failures"]
    assert failure["distribution"] == "oxi-typo"
    assert "register_agent" in failure["error"]
    assert set(by_distribution(listing["plugins"])) == {"oxi-engine"}


def test_a_class_registered_by_name_is_imported_only_by_a_config_that_uses_it(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    plain = project / "plain.toml"
    plain.write_text('[agents.w]\ntype = "exec"\nkwargs = { argv = ["true"] }\n')
    using = project / "using.toml"
    using.write_text('[agents.w]\ntype = "lazy"\nkwargs = { turns = 2 }\n')
    broken = project / "broken.toml"
    broken.write_text('[agents.w]\ntype = "lazy_broken"\n')
    show = textwrap.dedent(f"""\
        import sys
        from pathlib import Path
        from oxi_core.config import load_config
        from oxi_core.errors import OxiError
        load_config(Path({str(plain)!r}))
        print("oxi_lazy.heavy" in sys.modules)
        print(load_config(Path({str(using)!r})).worker.turns, "oxi_lazy.heavy" in sys.modules)
        try:
            load_config(Path({str(broken)!r}))
        except OxiError as error:
            print(error)
    """)

    shown = run([sys.executable, "-c", show], [sites["lazy"]], cwd=project)

    assert shown.returncode == 0, shown.stderr
    first, second, error = shown.stdout.splitlines()
    assert (first, second) == ("False", "2 True")
    assert "'lazy_broken' from distribution oxi-lazy cannot be loaded" in error
    assert "oxi_lazy.missing:Nope" in error and "ModuleNotFoundError" in error


def test_oxi_plugins_imports_every_class_registered_by_name_and_lists_one_that_fails(
    sites: dict[str, Path],
) -> None:
    listing = plugins_json([sites["lazy"]])

    assert by_distribution(listing["plugins"])["oxi-lazy"]["registered"] == {"agents": ["lazy"]}
    [failure] = listing["failures"]
    assert (failure["name"], failure["distribution"], failure["version"]) == (
        "lazy", "oxi-lazy", "0.2.0")
    assert "oxi_lazy.missing:Nope" in failure["error"]


def test_config_check_warns_of_an_installed_plugin_that_cannot_load(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "oxi.toml").write_text('[agents.w]\ntype = "exec"\nkwargs = { argv = ["true"] }\n')

    checked = run([str(OXI), "config", "check", "--json"], [sites["lazy"]], cwd=project)

    findings = json.loads(checked.stdout)["findings"]
    [found] = [f for f in findings if f["where"].startswith("plugin lazy")]
    assert found["severity"] == "warning" and "oxi_lazy.missing:Nope" in found["problem"]


def test_register_refuses_what_is_neither_a_class_nor_a_module_path() -> None:
    @hookimpl
    def register_agents(register: Any) -> None:
        register("odd", "no_colon_here")

    registry = build_registry(loaded_with(odd=("oxi-odd", types.SimpleNamespace(
        register_agents=register_agents))))

    assert registry.names("agents") == []
    [failure] = registry.failures
    assert "'package.module:Class'" in failure.error


# -- registration ----------------------------------------------------------------------------


class FakeAgent:
    pass


def agents_plugin(*names: str) -> types.SimpleNamespace:
    @hookimpl
    def register_agents(register: Any) -> None:
        for name in names:
            register(name, FakeAgent)

    return types.SimpleNamespace(register_agents=register_agents)


def loaded_with(**plugins: tuple[str, object]) -> LoadedPlugins:
    """A plugin manager holding ``plugins`` (name -> (distribution, plugin object))."""
    manager = pluggy.PluginManager("oxi")
    manager.add_hookspecs(hookspecs)
    loaded = LoadedPlugins(manager)
    for name, (distribution, plugin) in plugins.items():
        manager.register(plugin, name=name)
        loaded.infos[name] = PluginInfo(name, distribution, "1.0", builtin=False)
    return loaded


def test_two_plugins_registering_the_same_name_fail_naming_both_distributions() -> None:
    loaded = loaded_with(
        alpha=("oxi-alpha", agents_plugin("shared", "alpha_only")),
        beta=("oxi-beta", agents_plugin("shared")),
    )

    with pytest.raises(PluginError) as raised:
        build_registry(loaded)

    message = str(raised.value)
    assert "'shared'" in message
    assert "distribution oxi-alpha" in message
    assert "distribution oxi-beta" in message


def test_a_registration_hook_that_raises_is_reported_and_the_others_still_register() -> None:
    @hookimpl
    def register_agents(register: Any) -> None:
        raise ValueError("no agents today")

    loaded = loaded_with(
        good=("oxi-good", agents_plugin("good")),
        bad=("oxi-bad", types.SimpleNamespace(register_agents=register_agents)),
    )

    registry = build_registry(loaded)

    assert registry.names("agents") == ["good"]
    assert registry.get("agents", "good").distribution == "oxi-good"  # type: ignore[union-attr]
    [failure] = registry.failures
    assert (failure.distribution, failure.error) == (
        "oxi-bad",
        "register_agents raised ValueError: no agents today",
    )
