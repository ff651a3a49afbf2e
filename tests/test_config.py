"""oxi.toml: plugins built from their kwargs, the adapter, policy overrides, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
import pytest
from oxi_adapter_self import SelfAdapter

from oxi_core.config import KNOWN_DISTRIBUTIONS, load_config
from oxi_core.errors import ConfigError
from oxi_core.log import REDACTED, redact_text
from oxi_core.plugins import reset_plugins
from oxi_core.registry import Registration, Registry

OXI = Path(sys.executable).with_name("oxi")


@attrs.define
class ProbeAgent:
    """A registered agent whose fields cover the kwarg types plugins use."""

    workdir: Path = Path()
    turns: int = 1
    token: str = ""
    argv: tuple[str, ...] = ()
    skip_permissions: bool = False
    _label: str = "probe"
    context: Any = attrs.field(default=None, init=False, eq=False)

    def permission_bypass(self) -> str | None:
        return "skip_permissions = true" if self.skip_permissions else None

    def bind(self, context: Any) -> None:
        self.context = context


@attrs.define
class StubForge:
    pass


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [k for k in os.environ if k.startswith("OXI_")]:
        monkeypatch.delenv(name)
    reset_plugins()
    yield
    reset_plugins()


def probe_registry() -> Registry:
    """A hand-built registry: the `probe` agent and a `local` forge (the default forge)."""
    registry = Registry()
    for kind, name, cls in (("agents", "probe", ProbeAgent), ("forges", "local", StubForge)):
        registry.kinds[kind][name] = Registration(kind, name, cls, "tests", "oxi-tests")
    return registry


def write_toml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "oxi.toml"
    path.write_text(text, encoding="utf-8")
    return path.resolve()


def run_oxi(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXI_")}
    env.pop("PYTEST_CURRENT_TEST", None)  # the child is not under pytest
    env["OXI_RAISE_ERRORS"] = "0"
    return subprocess.run(
        [str(OXI), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def config_error(toml: Path, registry: Registry | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(toml, registry=registry)
    return str(raised.value)


def assert_one_line_error(toml: Path, *, line: int, table: str | None, key: str | None,
                          says: list[str]) -> None:
    """`oxi config check` prints exactly one line, the in-process ConfigError's text, naming the
    file and line, the table and the key."""
    result = run_oxi("--config", str(toml), "config", "check")
    message = config_error(toml)

    assert result.returncode == ConfigError.exit_code
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"oxi: error: {message}"]
    assert message.startswith(f"{toml}:{line}: [{table}]: " if table else f"{toml}:{line}: ")
    if key is not None:
        assert f"[{table}]: key {key!r}: " in message
    for fragment in says:
        assert fragment in message


# -- one-line errors through the real command line --------------------------------------------


def test_invalid_toml_is_one_line_naming_the_file_table_and_key(tmp_path: Path) -> None:
    toml = write_toml(
        tmp_path,
        '[engine]\nmax_concurrent = 1\n\n[agents.worker]\ntype = "exec"\n'
        "kwargs = { argv = [./agent.sh] }\n",
    )

    assert_one_line_error(
        toml, line=6, table="agents.worker", key="kwargs", says=["invalid TOML", "quotes"]
    )


def test_an_unknown_table_is_one_line_naming_the_tables_oxi_knows(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, '[agent.worker]\ntype = "exec"\n')

    assert_one_line_error(
        toml, line=1, table="agent", key=None,
        says=["unknown table (did you mean `agents`?)", "agents", "engine", "roles"]
    )


def test_an_unknown_type_is_one_line_listing_the_installed_ones(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, '[agents.worker]\ntype = "gemini-cli"\n')

    assert_one_line_error(
        toml,
        line=2,
        table="agents.worker",
        key="type",
        says=["unknown agent type 'gemini-cli'", "installed: ", "exec", "oxi plugins"],
    )


def test_an_unknown_but_known_of_type_names_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The workspace installs every distribution oxi knows of, so load none of them here.
    monkeypatch.setenv("OXI_LOAD_PLUGINS", "")
    reset_plugins()
    try:
        toml = write_toml(tmp_path, '[sources.ideas]\ntype = "newsletter"\n')
        message = config_error(toml)
    finally:
        monkeypatch.delenv("OXI_LOAD_PLUGINS")
        reset_plugins()
    assert message.startswith(f"{toml}:2: [sources.ideas]: key 'type': ")
    assert "unknown source type 'newsletter'" in message
    assert "pip install oxi-newsletter" in message
    assert KNOWN_DISTRIBUTIONS["newsletter"] == "oxi-newsletter"


def test_a_missing_required_kwarg_is_one_line(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, '[agents.worker]\ntype = "exec"\nkwargs = { timeout_s = 60 }\n')

    assert_one_line_error(
        toml, line=3, table="agents.worker", key="kwargs.argv", says=["required key is missing"]
    )


def test_a_kwarg_of_the_wrong_type_is_one_line_saying_what_was_expected(tmp_path: Path) -> None:
    toml = write_toml(
        tmp_path,
        '[agents.worker]\ntype = "exec"\n'
        'kwargs = { argv = ["./agent.sh"], timeout_s = "15 minutes" }\n',
    )

    assert_one_line_error(
        toml,
        line=3,
        table="agents.worker",
        key="kwargs.timeout_s",
        says=["expected a number, got the string '15 minutes'"],
    )


def test_an_env_value_naming_an_unset_variable_is_one_line(tmp_path: Path) -> None:
    toml = write_toml(
        tmp_path,
        '[notifiers.ops]\ntype = "webhook"\n'
        'kwargs = { url = { env = "OXI_TEST_UNSET_WEBHOOK_URL" } }\n',
    )

    assert_one_line_error(
        toml,
        line=3,
        table="notifiers.ops",
        key="kwargs.url",
        says=["environment variable OXI_TEST_UNSET_WEBHOOK_URL is not set", "export"],
    )


def test_an_adapter_class_that_cannot_be_imported_is_one_line(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, '[adapter]\nclass = "oxi_adapter_gitlab.GitLabAdapter"\n')

    assert_one_line_error(
        toml,
        line=2,
        table="adapter",
        key="class",
        says=["cannot import 'oxi_adapter_gitlab.GitLabAdapter'", "ModuleNotFoundError"],
    )


# -- more errors, in-process -------------------------------------------------------------------


def test_an_unknown_kwarg_names_the_key_and_the_accepted_ones(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, '[agents.a]\ntype = "probe"\nkwargs = { colour = "red" }\n')

    assert config_error(toml, probe_registry()) == (
        f"{toml}:3: [agents.a]: key 'kwargs.colour': unknown key; ProbeAgent accepts argv, label, "
        "skip_permissions, token, turns, workdir"
    )


def test_an_unknown_engine_key_names_the_key_and_the_accepted_ones(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, "[engine]\nmax_concurent = 2\n")

    message = config_error(toml, probe_registry())

    assert message.startswith(f"{toml}:2: [engine]: key 'max_concurent': unknown key (did you "
                              "mean `max_concurrent`?); [engine] accepts ")


@pytest.mark.parametrize(
    ("roles", "key", "says"),
    [
        (
            'worker = "ghost"',
            "worker",
            "names 'ghost', which is not configured; configured agents: a",
        ),
        ('reviewer = "a"', "reviewer", "unknown role; expected critic, forge, shadow, worker"),
        ('wroker = "a"', "wroker", "unknown role (did you mean `worker`?); expected critic,"),
        ("worker = 3", "worker", "expected a string, got the number 3"),
        ("critic = [3]", "critic", 'expected a judge name or a list of them, such as ["tests"'),
        ('critic = ["ghost", "tests"]', "critic", "names 'ghost', which is not configured"),
    ],
)
def test_a_bad_roles_entry_names_the_role(tmp_path: Path, roles: str, key: str, says: str) -> None:
    toml = write_toml(tmp_path, f'[agents.a]\ntype = "probe"\n\n[roles]\n{roles}\n')

    message = config_error(toml, probe_registry())
    assert message.startswith(f"{toml}:5: [roles]: key {key!r}: {says}")


@pytest.mark.parametrize(
    ("hooks", "where"),
    [
        (
            '[worktree.hooks]\nafter_create = { argv = "uv sync" }',
            '[worktree.hooks.after_create]: key \'argv\': expected a list such as ["a", "b"], '
            "got the string 'uv sync'",
        ),
        (
            "[worktree.hooks]\nafter_create = { argv = [] }",
            "[worktree.hooks.after_create]: key 'argv': expected a non-empty argv list",
        ),
        (
            '[worktree.hooks]\nbefore_lunch = { argv = ["true"] }',
            "[worktree.hooks]: key 'before_lunch': unknown hook (did you mean `before_run`?); "
            "expected one of after_create, "
            "before_run, after_run, before_remove",
        ),
        (
            '[worktree.hooks]\nafter_creat = { argv = ["true"] }',
            "[worktree.hooks]: key 'after_creat': unknown hook (did you mean `after_create`?)",
        ),
        (
            '[worktree.hooks]\nafter_run = { argv = ["true"], timeout = 5 }',
            "[worktree.hooks.after_run]: key 'timeout': unknown key (did you mean `timeout_s`?); "
            "HookCommand accepts argv, timeout_s",
        ),
        (
            '[worktree]\nhooks = "uv sync"',
            "[worktree]: key 'hooks': expected a table of hooks",
        ),
    ],
)
def test_a_bad_worktree_hook_names_the_hook_and_the_key(
    tmp_path: Path, hooks: str, where: str
) -> None:
    toml = write_toml(tmp_path, hooks + "\n")

    assert config_error(toml, probe_registry()).startswith(f"{toml}:2: {where}")


@pytest.mark.parametrize(
    ("kwargs", "key", "says"),
    [
        ("turns = 2.5", "turns", "expected an integer, got the number 2.5"),
        ("turns = true", "turns", "expected an integer, got true"),
        ("token = 42", "token", "expected a string, got the number 42"),
        ("skip_permissions = 1", "skip_permissions", "expected true or false, got the number 1"),
        ("workdir = 7", "workdir", "expected a path string, got the number 7"),
        (
            'argv = "./agent.sh --fast"',
            "argv",
            'expected a list such as ["a", "b"], got the string \'./agent.sh --fast\'',
        ),
        ('argv = ["ok", 3]', "argv[1]", "expected a string, got the number 3"),
    ],
)
def test_kwargs_are_checked_strictly_and_a_string_is_never_split_into_a_list(
    tmp_path: Path, kwargs: str, key: str, says: str
) -> None:
    toml = write_toml(tmp_path, f'[agents.a]\ntype = "probe"\nkwargs = {{ {kwargs} }}\n')

    assert config_error(toml, probe_registry()) == (
        f"{toml}:3: [agents.a]: key 'kwargs.{key}': {says}")


def test_a_plugin_annotation_that_cannot_be_resolved_is_a_config_error(tmp_path: Path) -> None:
    @attrs.define
    class Unresolvable:
        when: NotImportedAtRuntime  # type: ignore[name-defined]  # noqa: F821

    registry = probe_registry()
    registry.kinds["agents"]["odd"] = Registration(
        "agents", "odd", Unresolvable, "tests", "oxi-tests"
    )
    toml = write_toml(tmp_path, '[agents.a]\ntype = "odd"\n')

    message = config_error(toml, registry)

    assert message.startswith(f"{toml}:1: [agents.a]: cannot resolve the annotations of ")
    assert "NotImportedAtRuntime" in message


# -- building what oxi.toml names --------------------------------------------------------------


def test_kwargs_build_the_registered_class_with_paths_relative_to_the_toml_and_bind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write_toml(
        tmp_path / "conf",
        '[agents.a]\ntype = "probe"\n'
        'kwargs = { workdir = "sub/dir", turns = 3, argv = ["run", "--fast"], label = "x" }\n',
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    config = load_config(toml, registry=probe_registry())

    agent = config.instance("agents", "a")
    assert agent == ProbeAgent(
        workdir=toml.parent / "sub" / "dir", turns=3, argv=("run", "--fast"), label="x"
    )
    assert config.roles.worker == "a"  # the only agent is the worker
    assert agent.context.config_dir == toml.parent
    assert agent.context.paths == config.paths


def test_adapter_class_and_kwargs_build_the_adapter_relative_to_the_toml_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write_toml(
        tmp_path / "conf",
        '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\n'
        'kwargs = { repo_root = "../repo", roadmap = "docs/roadmap.md" }\n',
    )
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    config = load_config(toml, registry=probe_registry())

    repo = (tmp_path / "repo").resolve()
    assert isinstance(config.adapter, SelfAdapter)
    assert config.adapter.repo_root == repo
    assert config.paths.repo_root == repo
    assert config.paths.roadmap == repo / "docs" / "roadmap.md"
    assert config.paths.ledger == repo / ".oxi" / "oxi.db"


def test_without_an_adapter_table_the_entry_point_adapter_runs_on_the_tomls_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write_toml(tmp_path / "repo", '[agents.a]\ntype = "probe"\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    config = load_config(toml, registry=probe_registry())

    [provided] = entry_points(group="oxi.adapters")
    assert provided.dist is not None
    assert provided.dist.name == "oxi-adapter-self"
    assert isinstance(config.adapter, SelfAdapter)
    assert config.adapter.repo_root == toml.parent
    assert config.paths.roadmap == toml.parent / "roadmap.md"


def test_the_engine_table_overrides_the_adapters_policy(tmp_path: Path) -> None:
    toml = write_toml(
        tmp_path,
        '[adapter]\nclass = "oxi_adapter_self.SelfAdapter"\n'
        'kwargs = { repo_root = ".", max_concurrent = 2, budget_per_day_usd = 5.0, remote = "up" }'
        "\n\n[engine]\nmax_concurrent = 4\ntask_caps_usd = { opus = 3 }\n",
    )

    policy = load_config(toml, registry=probe_registry()).policy

    assert policy.max_concurrent == 4  # [engine] wins
    assert policy.budget_per_day_usd == 5.0  # the adapter's, not overridden
    assert policy.remote == "up"
    assert policy.task_caps_usd == {"opus": 3.0}


def test_env_secrets_reach_the_plugin_and_are_redacted_from_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"probe-{uuid.uuid4().hex}"
    monkeypatch.setenv("OXI_TEST_PROBE_TOKEN", secret)
    toml = write_toml(
        tmp_path,
        '[agents.a]\ntype = "probe"\nkwargs = { token = { env = "OXI_TEST_PROBE_TOKEN" } }\n',
    )

    agent = load_config(toml, registry=probe_registry()).instance("agents", "a")

    assert agent.token == secret
    assert redact_text(f"calling with {secret}") == f"calling with {REDACTED}"


def test_a_secret_in_a_wrong_type_error_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"probe-{uuid.uuid4().hex}"
    monkeypatch.setenv("OXI_TEST_PROBE_TURNS", secret)
    toml = write_toml(
        tmp_path,
        '[agents.a]\ntype = "probe"\nkwargs = { turns = { env = "OXI_TEST_PROBE_TURNS" } }\n',
    )

    message = config_error(toml, probe_registry())

    assert secret not in message
    assert message.endswith(f"key 'kwargs.turns': expected an integer, got the string '{REDACTED}'")


@pytest.mark.parametrize(
    ("skip", "trust", "refused"),
    [(True, None, True), (True, "normal", True), (True, "high", False), (False, None, False)],
)
def test_an_agent_that_bypasses_its_permissions_is_refused_unless_trust_is_high(
    tmp_path: Path, skip: bool, trust: str | None, refused: bool
) -> None:
    trust_line = f'trust = "{trust}"\n' if trust else ""
    kwargs = f"kwargs = {{ skip_permissions = {str(skip).lower()} }}\n"
    toml = write_toml(tmp_path, f'[agents.a]\ntype = "probe"\n{trust_line}{kwargs}')

    if refused:
        message = config_error(toml, probe_registry())
        assert message.startswith(f"{toml}:{4 if trust else 3}: [agents.a]: key 'kwargs': ")
        assert "bypasses its permission checks (skip_permissions = true)" in message
        assert 'trust = "high"' in message
    else:
        agent = load_config(toml, registry=probe_registry()).instance("agents", "a")
        assert agent.skip_permissions is skip


# -- oxi init -----------------------------------------------------------------------------------


def test_oxi_init_writes_a_starter_that_oxi_config_check_loads(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True, timeout=30)

    written = run_oxi("init", str(repo))
    checked = run_oxi("config", "check", "--json", cwd=repo)  # found in the current folder
    again = run_oxi("init", str(repo))

    assert written.returncode == 0, written.stderr
    assert (repo / "oxi.toml").is_file()
    assert checked.returncode == 1, checked.stderr  # loads; its checks name what is missing
    report = json.loads(checked.stdout)
    assert {f["where"] for f in report["findings"] if f["severity"] == "error"} >= {
        "[engine] remote", "[agents.script] kwargs.argv"}
    assert report["config"] == str((repo / "oxi.toml").resolve())
    assert report["roles"] == {  # no test command in an empty repository: no critic
        "worker": "script",
        "critic": None,
        "forge": "local",
        "shadow": None,
    }
    instances = report["instances"]
    assert instances["agents"] == {
        "script": {"type": "exec", "distribution": "oxi-engine", "trust": "normal"}
    }
    assert "judges" not in instances
    assert instances["forges"] == {
        "local": {"type": "local", "distribution": "oxi-engine", "trust": "normal"}
    }
    assert again.returncode != 0
    assert "oxi.toml exists (pass --force" in again.stderr


@pytest.mark.parametrize(
    ("toml_text", "says"),
    [
        (  # the fault-injection config: the hook outlives the heartbeat
            '[engine]\nheartbeat_timeout_s = 2\nstall_timeout_s = 1\nstartup_timeout_s = 1\n'
            '[worktree.hooks]\nafter_create = { argv = ["sleep", "6"], timeout_s = 30 }\n',
            ["heartbeat_timeout_s = 2 s is not well above",
             "[worktree.hooks.after_create] timeout_s = 30 s",
             "set heartbeat_timeout_s to at least 60 s (twice that), or lower that timeout"],
        ),
        (
            "[engine]\nheartbeat_timeout_s = 500\n",  # the defaults: stall 300 s, start-up 120 s
            ["heartbeat_timeout_s = 500 s is not well above", "[engine] stall_timeout_s = 300 s",
             "at least 600 s"],
        ),
        (
            "[engine]\nheartbeat_timeout_s = 300\nstall_timeout_s = 60\nstartup_timeout_s = 200\n",
            ["[engine] startup_timeout_s = 200 s", "at least 400 s"],
        ),
        (  # a hook without its own timeout_s runs for [engine] hook_timeout_s
            '[engine]\nheartbeat_timeout_s = 1000\nhook_timeout_s = 900\n'
            '[worktree.hooks]\nafter_create = { argv = ["uv", "sync"] }\n',
            ["heartbeat_timeout_s = 1000 s is not well above",
             "[engine] hook_timeout_s = 900 s", "at least 1800 s"],
        ),
    ],
)
def test_a_heartbeat_timeout_not_well_above_the_longest_legal_silence_is_refused(
    tmp_path: Path, toml_text: str, says: list[str]
) -> None:
    # A live worker may be silent that long (a hook, a CLI starting, a quiet agent): a
    # heartbeat that expires sooner makes another host reap a live claim.
    toml = write_toml(tmp_path, toml_text)
    assert_one_line_error(toml, line=2, table="engine", key="heartbeat_timeout_s", says=says)
    result = run_oxi("--config", str(toml), "tick")
    assert result.returncode == ConfigError.exit_code and "heartbeat_timeout_s" in result.stderr
    fine = write_toml(tmp_path / "fine", toml_text.replace(
        "heartbeat_timeout_s = 2\n", "heartbeat_timeout_s = 60\n").replace(
        "heartbeat_timeout_s = 500\n", "heartbeat_timeout_s = 600\n").replace(
        "heartbeat_timeout_s = 300\n", "heartbeat_timeout_s = 400\n").replace(
        "heartbeat_timeout_s = 1000\n", "heartbeat_timeout_s = 1800\n"))
    assert load_config(fine, registry=probe_registry()).policy.heartbeat_timeout_s >= 60


# -- where an error is: its line, and what was probably meant ------------------------------------


def test_a_toml_syntax_error_names_its_line_not_the_table_above(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, '[engine]\nmax_concurrent = 2\n\n[agents.worker\ntype = "exec"\n')

    result = run_oxi("--config", str(toml), "config", "check")

    assert result.returncode == 2
    assert result.stderr.startswith(f"oxi: error: {toml}:4: invalid TOML: "), result.stderr
    assert "[engine]" not in result.stderr
    inside = write_toml(tmp_path / "b", "[engine]\nmax_concurrent = 2\nbudget_per_day_usd = = 3\n")
    assert config_error(inside).startswith(
        f"{inside}:3: [engine]: key 'budget_per_day_usd': invalid TOML: ")


def test_a_misspelt_table_or_key_says_what_was_meant_and_where(tmp_path: Path) -> None:
    table = write_toml(tmp_path / "a", "[engine]\nmax_concurrent = 1\n\n[engin]\nauto_merge = 1\n")
    key = write_toml(tmp_path / "b", "# limits\n[engine]\nauto_merge = true\nmax_concurent = 2\n")

    table_error = run_oxi("--config", str(table), "config", "check")
    key_error = run_oxi("--config", str(key), "config", "check")

    assert table_error.stderr.startswith(
        f"oxi: error: {table}:4: [engin]: unknown table (did you mean `engine`?); ")
    assert key_error.stderr.startswith(
        f"oxi: error: {key}:4: [engine]: key 'max_concurent': unknown key (did you mean "
        "`max_concurrent`?); ")


def test_an_error_inside_a_dotted_table_names_the_key_line(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, '[agents.worker]\ntype = "exec"\n\n[agents.worker.kwargs]\n'
                                'argv = [\n  "a",\n]\ntimeout_s = "soon"\n')

    assert config_error(toml).startswith(
        f"{toml}:8: [agents.worker]: key 'kwargs.timeout_s': expected a number")
