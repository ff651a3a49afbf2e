"""`oxi init`: an oxi.toml written for this repository, a starter roadmap.md, `.oxi/` ignored.

It looks at what is installed (claude, codex on PATH) and at the repository (its test command,
its remote and base branch) and writes a config whose first tick works, or that names plainly
what is still to be filled in; `oxi config check` names it again, with the fix.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import attrs

from oxi_core import git
from oxi_core.errors import NotARepository, OxiError

AGENT_SCRIPT = "scripts/oxi-agent.sh"
AGENTS = ("claude", "codex", "exec")
DEFAULT_BASE = "main"


@attrs.frozen
class TestCommand:
    argv: tuple[str, ...]
    why: str  # what it was found from


@attrs.frozen
class Detected:
    root: Path
    worker: str  # "claude", "codex" or "exec"
    binary: str | None  # the worker's binary as found on PATH
    codex_version: str | None
    test: TestCommand | None
    remote: str | None
    base_branch: str


@attrs.frozen
class InitResult:
    written: tuple[str, ...]
    detected: Detected
    todo: tuple[str, ...]  # what the operator must still do before the first tick


# -- what is there -----------------------------------------------------------------------


def work_tree_root(folder: Path) -> Path:
    folder = folder.resolve()
    done = git.git(["rev-parse", "--show-toplevel"], folder, check=False) if folder.is_dir() \
        else None
    if done is None or done.returncode != 0:
        raise NotARepository(f"{folder} is not inside a git repository",
                             hint="oxi works on a git repository: `git init` (or clone yours) "
                                  "first, then run `oxi init` in it")
    return Path(done.stdout.strip())


def detect(root: Path, agent: str | None = None) -> Detected:
    binaries = {name: shutil.which(name) for name in ("claude", "codex")}
    worker = agent or next((name for name, found in binaries.items() if found), "exec")
    binary = binaries.get(worker)
    codex_version = None
    if worker == "codex" and binary:
        from oxi_core.agentic.runner import binary_version, build_env

        found = binary_version(binary, build_env())
        codex_version = None if found == "unknown" else found
    remote, base = _remote_and_base(root)
    return Detected(root, worker, binary, codex_version, detect_test_command(root), remote,
                    base)


def _remote_and_base(root: Path) -> tuple[str | None, str]:
    remotes = git.out(["remote"], root).split()
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    if remote is not None:
        head = git.git(["symbolic-ref", "--quiet", "--short", f"refs/remotes/{remote}/HEAD"],
                       root, check=False)
        if head.returncode == 0 and "/" in head.stdout:
            return remote, head.stdout.strip().split("/", 1)[1]
    branch = git.git(["branch", "--show-current"], root, check=False).stdout.strip()
    return remote, branch or DEFAULT_BASE


def detect_test_command(root: Path) -> TestCommand | None:
    """The repository's own test command, from the files that declare one."""
    package = root / "package.json"
    if package.is_file():
        try:
            scripts = json.loads(package.read_text(encoding="utf-8")).get("scripts") or {}
        except (ValueError, AttributeError):
            scripts = {}
        test = scripts.get("test") if isinstance(scripts, dict) else None
        if isinstance(test, str) and "no test specified" not in test:
            return TestCommand(("npm", "test"), "package.json's test script")
    makefile = next((root / name for name in ("Makefile", "makefile", "GNUmakefile")
                     if (root / name).is_file()), None)
    if makefile is not None and re.search(r"^test\s*:", makefile.read_text(errors="replace"),
                                          re.MULTILINE):
        return TestCommand(("make", "test"), f"{makefile.name}'s test target")
    if (root / "Cargo.toml").is_file():
        return TestCommand(("cargo", "test"), "Cargo.toml")
    if (root / "go.mod").is_file():
        return TestCommand(("go", "test", "./..."), "go.mod")
    if _uses_pytest(root):
        if (root / "uv.lock").is_file():
            return TestCommand(("uv", "run", "pytest", "-q"), "pytest, with uv.lock")
        return TestCommand(("pytest", "-q"), "pytest in the project's configuration")
    tests = root / "tests"
    if tests.is_dir() and any(tests.glob("test*.py")):
        return TestCommand(("python3", "-m", "unittest", "discover", "-s", "tests", "-q"),
                           "unittest files in tests/")
    return None


def _uses_pytest(root: Path) -> bool:
    if (root / "pytest.ini").is_file() or (root / "conftest.py").is_file():
        return True
    for name in ("pyproject.toml", "setup.cfg", "tox.ini", "requirements-dev.txt",
                 "requirements.txt"):
        path = root / name
        if path.is_file() and "pytest" in path.read_text(errors="replace"):
            return True
    return False


# -- what gets written --------------------------------------------------------------------


def _toml(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(json.dumps(part) for part in value) + "]"


def render_toml(found: Detected) -> str:
    lines = [
        "# oxi.toml: how oxi runs on this repository (written by `oxi init`).",
        "# `oxi config check` checks it and everything the first tick needs.",
        "# Every key, its type, default and meaning: docs/configuration.md.",
        "# Paths are relative to this file. Secrets never go here: write { env = \"NAME\" }.",
        "",
        "[adapter]",
        "# Where the roadmap, the .oxi/ state folder and the worktrees live.",
        'class = "oxi_adapter_self.SelfAdapter"',
        'kwargs = { repo_root = "." }',
        "",
        "[engine]",
        "max_concurrent = 1",
        "budget_per_day_usd = 20.0",
        f"remote = {_toml(found.remote or 'origin')}"
        + ("" if found.remote else "   # no remote yet: `git remote add origin URL`"),
        f"base_branch = {_toml(found.base_branch)}   # pull requests merge into this branch",
        "",
        "# The worker: a name of your choosing -> a registered type (`oxi plugins`) + kwargs.",
    ]
    lines += _agent_lines(found)
    lines.append("")
    if found.test is not None:
        lines += [
            f"# The critic: approves a pull request when every command passes on its tree "
            f"(found: {found.test.why}).",
            "[judges.tests]",
            'type = "command"',
            f"kwargs = {{ commands = [{_toml(found.test.argv)}], timeout_s = 900 }}",
            "",
        ]
    else:
        lines += [
            "# The critic: no test command was found. Name yours, or pull requests wait for a",
            "# person to review and merge them.",
            "# [judges.tests]",
            '# type = "command"',
            '# kwargs = { commands = [["make", "test"]], timeout_s = 900 }',
            "",
        ]
    lines += [
        "# The forge: `local` keeps pull requests in the ledger and merges into the remote",
        "# (a bare repository on this machine). A hosted remote needs a forge plugin.",
        "[forges.local]",
        'type = "local"',
        "",
        "[roles]",
        f'worker = "{found.worker if found.worker != "exec" else "script"}"',
        'critic = "tests"' if found.test is not None else '# critic = "tests"',
        'forge = "local"',
        "",
        "# Commands run in each new worktree (argv lists, with a timeout), e.g. to install",
        "# what the tests need:",
        "# [worktree.hooks]",
        '# after_create = { argv = ["uv", "sync"], timeout_s = 600 }',
        "",
        "# [notifiers.ops]",
        '# type = "webhook"',
        '# kwargs = { url = { env = "OXI_WEBHOOK_URL" } }',
        "",
    ]
    return "\n".join(lines)


def _agent_lines(found: Detected) -> list[str]:
    if found.worker == "claude":
        return [
            f"# Claude Code, found at {found.binary or 'nowhere on PATH'}.",
            "[agents.claude]",
            'type = "claude"',
            "kwargs = { max_turns = 40 }",
            '# kwargs = { model = "claude-sonnet-4-5", api_key = { env = "ANTHROPIC_API_KEY" } }',
            "# (without api_key, Claude Code uses its own login)",
        ]
    if found.worker == "codex":
        pin = f'pinned_version = "{found.codex_version}"' if found.codex_version else ""
        return [
            f"# Codex, found at {found.binary or 'nowhere on PATH'}; the pin is the version "
            "found, whose output oxi reads.",
            "[agents.codex]",
            'type = "codex"',
            f"kwargs = {{ {pin} }}" if pin else "kwargs = {}",
        ]
    return [
        "# No claude or codex on PATH: the worker is a script of yours. It runs in the task's",
        "# worktree (a checkout of the base branch, so commit it) with the prompt in",
        "# $OXI_PROMPT and in the file $OXI_PROMPT_FILE; exit 0 when done, 75 to be retried.",
        "[agents.script]",
        'type = "exec"',
        f'kwargs = {{ argv = ["./{AGENT_SCRIPT}"], timeout_s = 900 }}',
    ]


STARTER_ROADMAP = """\
# Roadmap

oxi works through the open items here, highest tier first, then in order. An item is a bold
line `**T{tier}-{N} · title**`, an italic line saying what done looks like, then any details;
name the files it touches (`src/app.py`) so items on the same files never run at once.
docs/roadmap-format.md has the whole format; `oxi roadmap lint` checks this file.

## Tier 1

<!-- An example: remove these comment markers and write your own.

**T1-1 · Add a --version flag**
_`app --version` prints the version from pyproject.toml; a test covers it._

-->
"""


def ensure_ignored(root: Path) -> bool:
    """Add `.oxi/` to .gitignore unless git ignores it already; True when it was added."""
    if git.git(["check-ignore", "-q", ".oxi/"], root, check=False).returncode == 0:
        return False
    ignore = root / ".gitignore"
    text = ignore.read_text(encoding="utf-8") if ignore.is_file() else ""
    prefix = "" if not text or text.endswith("\n") else "\n"
    ignore.write_text(f"{text}{prefix}# oxi's ledger and worktrees\n.oxi/\n", encoding="utf-8")
    return True


def init_repository(folder: Path, *, force: bool = False, agent: str | None = None) -> InitResult:
    root = work_tree_root(folder)
    target = root / "oxi.toml"
    if target.exists() and not force:
        raise OxiError(f"{target} exists", hint="pass --force to overwrite it")
    found = detect(root, agent)
    written = []
    target.write_text(render_toml(found), encoding="utf-8")
    written.append("oxi.toml")
    roadmap = root / "roadmap.md"
    if not roadmap.exists():
        roadmap.write_text(STARTER_ROADMAP, encoding="utf-8")
        written.append("roadmap.md")
    if ensure_ignored(root):
        written.append(".gitignore")
    return InitResult(tuple(written), found, tuple(_todo(found, roadmap_written="roadmap.md"
                                                          in written)))


def _todo(found: Detected, *, roadmap_written: bool) -> list[str]:
    todo = []
    if found.remote is None:
        todo.append("add a remote: `git remote add origin URL` (the local forge merges into "
                    "a bare repository on this machine), and push the base branch to it")
    if found.worker == "exec" and not (found.root / AGENT_SCRIPT).is_file():
        todo.append(f"write {AGENT_SCRIPT} (executable; the prompt is in $OXI_PROMPT), commit "
                    "and push it; or install claude or codex and run `oxi init --force`")
    elif found.worker in ("claude", "codex") and found.binary is None:
        todo.append(f"install {found.worker}: it is not on PATH")
    if found.test is None:
        todo.append("name your test command in [judges.tests] (without a critic, pull requests "
                    "wait for a person)")
    if roadmap_written:
        todo.append("write your first item in roadmap.md")
    return todo
