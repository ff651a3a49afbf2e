"""`oxi init` writes a config whose first tick works (or that names what is missing), and
`oxi config check` catches everything the first tick would hit, each with its key and fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oxi_core.testing import repos
from oxi_core.testing.repos import make_repo, run_git

OXI = Path(sys.executable).with_name("oxi")
AGENT_SCRIPT = """\
#!/bin/sh
# A keyless agent: writes a note named after its task.
mkdir -p notes
echo "done: $OXI_TASK_ID" > "notes/$OXI_TASK_ID.txt"
"""
UNITTEST = """\
import unittest


class NotesTest(unittest.TestCase):
    def test_nothing_broken(self):
        self.assertTrue(True)
"""


def oxi(*args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OXI_", "PYTEST_"))}
    env["OXI_RAISE_ERRORS"] = "0"
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(OXI), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)


# A PATH with git, sh and python3 but no claude or codex: what the first-run CI has.
def plain_path(tmp_path: Path) -> str:
    folder = tmp_path / "plain-bin"
    folder.mkdir(exist_ok=True)
    for tool in ("git", "sh", "mkdir", "echo"):
        link = folder / tool
        if not link.exists():
            link.symlink_to(_which(tool))
    python = folder / "python3"  # the real interpreter (a pyenv shim needs pyenv on PATH)
    if not python.exists():
        python.symlink_to(Path(sys.base_prefix) / "bin" / "python3")
    return str(folder)


def a_repo(tmp_path: Path, files: dict[str, str], name: str = "app") -> repos.TestRepo:
    repo = make_repo(tmp_path, files, name=name)
    script = repo.root / "scripts" / "oxi-agent.sh"
    if script.exists():
        script.chmod(0o755)
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", "agent script executable")
        repo.git("push", "-q", "origin", "main")
    return repo


def test_init_outside_a_repository_fails_and_writes_nothing(tmp_path: Path) -> None:
    result = oxi("init", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith(f"oxi: error: {tmp_path} is not inside a git repository")
    assert list(tmp_path.iterdir()) == []


def test_init_then_config_check_then_tick_merges_a_pull_request(tmp_path: Path) -> None:
    repo = a_repo(tmp_path, {"scripts/oxi-agent.sh": AGENT_SCRIPT, "tests/test_notes.py": UNITTEST})
    path = plain_path(tmp_path)

    init = oxi("init", cwd=repo.root, path=path)
    assert init.returncode == 0, init.stderr
    assert "worker: exec (./scripts/oxi-agent.sh)" in init.stdout
    assert "critic: python3 -m unittest discover -s tests -q (unittest files in tests/)" in (
        init.stdout)
    assert "write your first item in roadmap.md" in init.stdout
    assert ".oxi/" in (repo.root / ".gitignore").read_text().splitlines()
    assert run_git(["check-ignore", ".oxi/oxi.db"], repo.root) == ".oxi/oxi.db"

    checked = oxi("config", "check", cwd=repo.root, path=path)
    assert checked.returncode == 0, checked.stdout
    assert "warning: roadmap.md: no open items" in checked.stdout  # the starter's example is
    # a comment, never dispatched
    with (repo.root / "roadmap.md").open("a") as roadmap:
        roadmap.write("\n**T1-1 · Write a note**\n_`notes/T1-1.txt` says it is done._\n")

    ticked = oxi("tick", cwd=repo.root, path=path)

    assert ticked.returncode == 0, ticked.stderr
    assert ticked.stdout.startswith("oxi tick: dispatched T1-1, merged T1-1")
    assert repo.origin_file("notes/T1-1.txt") == "done: T1-1\n"
    # oxi merged on origin: the operator's main is behind, and the tick and status say so.
    note = ("your local main is 1 commit behind origin/main (oxi merges there): "
            "`git pull --ff-only` before you push")
    assert f"  note: {note}" in ticked.stdout.splitlines()
    status = json.loads(oxi("status", "--json", cwd=repo.root, path=path).stdout)
    assert status["local_base_behind"]["message"] == note
    repo.git("pull", "-q", "--ff-only")
    status = json.loads(oxi("status", "--json", cwd=repo.root, path=path).stdout)
    assert status["local_base_behind"] is None


def test_init_says_what_is_still_to_do_and_config_check_names_each_with_its_fix(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    run_git(["init", "-q", "-b", "main"], folder)
    path = plain_path(tmp_path)

    init = oxi("init", "--json", cwd=folder, path=path)
    checked = oxi("config", "check", "--json", cwd=folder, path=path)

    assert init.returncode == 0, init.stderr
    report = json.loads(init.stdout)
    assert report["worker"] == {"type": "exec", "program": "./scripts/oxi-agent.sh"}
    assert report["critic"] is None and report["remote"] is None
    assert [item.split(" ")[:3] for item in report["todo"]] == [
        ["add", "a", "remote:"], ["write", "scripts/oxi-agent.sh", "(executable;"],
        ["name", "your", "test"], ["write", "your", "first"]]
    assert checked.returncode == 1
    findings = {f["where"]: f for f in json.loads(checked.stdout)["findings"]}
    assert findings["[engine] remote"]["problem"] == "the repository has no remote named 'origin'"
    assert findings["[engine] remote"]["fix"].startswith("`git remote add origin URL`")
    assert findings["[agents.script] kwargs.argv"]["problem"].startswith(
        "./scripts/oxi-agent.sh not found in the repository")
    assert findings["[roles] critic"]["severity"] == "warning"


def test_config_check_catches_what_the_first_tick_would_hit(tmp_path: Path) -> None:
    repo = a_repo(tmp_path, {"scripts/oxi-agent.sh": AGENT_SCRIPT, "roadmap.md": "# r\n"})
    (repo.root / "scripts" / "local-only.sh").write_text("#!/bin/sh\n")
    (repo.root / "scripts" / "local-only.sh").chmod(0o755)
    repo.write("oxi.toml", """\
[adapter]
class = "oxi_adapter_self.SelfAdapter"
kwargs = { repo_root = ".", roadmap = "ROADMAP.md" }

[engine]
base_branch = "trunk"

[agents.script]
type = "exec"
kwargs = { argv = ["./scripts/local-only.sh"] }

[agents.other]
type = "exec"
kwargs = { argv = ["no-such-agent-binary"] }

[judges.tests]
type = "command"
kwargs = { commands = [["python3", "-m", "no_such_test_runner"], ["./run-tests.sh"]] }

[sources.ideas]
type = "jsonl-free"

[roles]
worker = "script"
critic = "tests"

[worktree.hooks]
after_create = { argv = ["no-such-installer"] }
""".replace('[sources.ideas]\ntype = "jsonl-free"\n\n', ""))

    result = oxi("config", "check", cwd=repo.root)

    assert result.returncode == 1, result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert lines == [
        "error: [engine] base_branch: origin has no branch 'trunk' (as last fetched); fix: push "
        "it (`git push origin trunk`) and `git fetch origin`, or set [engine] base_branch",
        f"error: [adapter] kwargs.roadmap: no roadmap at {repo.root / 'ROADMAP.md'}; fix: "
        "create roadmap.md (docs/roadmap-format.md shows the format), or point the adapter's "
        "`roadmap` kwarg at yours",
        "error: [agents.script] kwargs.argv: ./scripts/local-only.sh is not committed on "
        "origin/trunk: worktrees are checkouts of it, so the agent would not find it (commit "
        "and push it); fix: write the agent script (it gets the prompt in $OXI_PROMPT), commit "
        "and push it; or install claude or codex and run `oxi init --force`",
        "error: [agents.other] kwargs.argv: no-such-agent-binary not found on PATH; fix: write "
        "the agent script (it gets the prompt in $OXI_PROMPT), commit and push it; or install "
        "claude or codex and run `oxi init --force`",
        f"error: [judges.tests] kwargs.commands[0]: python3 ({_which('python3')}) has no module "
        "no_such_test_runner; fix: name a command that runs your tests in a fresh checkout "
        "(e.g. [\"uv\", \"run\", \"pytest\"]), or install what it needs",
        f"error: [judges.tests] kwargs.commands[1]: ./run-tests.sh not found in the repository "
        f"({repo.root / 'run-tests.sh'}); fix: name a command that runs your tests in a fresh "
        "checkout (e.g. [\"uv\", \"run\", \"pytest\"]), or install what it needs",
        "error: [worktree.hooks] after_create: no-such-installer not found on PATH; fix: "
        "install it, or fix the hook's argv",
    ]


def _which(tool: str) -> str:
    return subprocess.run(["which", tool], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize(("files", "critic"), [
    ({"package.json": '{"scripts": {"test": "vitest run"}}'}, ["npm", "test"]),
    ({"Makefile": "all:\n\ttrue\n\ntest:\n\ttrue\n"}, ["make", "test"]),
    ({"pyproject.toml": "[tool.pytest.ini_options]\n", "uv.lock": ""},
     ["uv", "run", "pytest", "-q"]),
    ({"pyproject.toml": "[project]\nname = 'x'\n[dependency-groups]\ndev = ['pytest']\n"},
     ["pytest", "-q"]),
    ({"Cargo.toml": "[package]\nname = 'x'\n"}, ["cargo", "test"]),
    ({"go.mod": "module x\n"}, ["go", "test", "./..."]),
    ({"package.json": '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'},
     None),
])
def test_init_finds_the_repositorys_test_command(
    tmp_path: Path, files: dict[str, str], critic: list[str] | None
) -> None:
    repo = make_repo(tmp_path, files)

    result = oxi("init", "--json", cwd=repo.root, path=plain_path(tmp_path))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["critic"] == critic


def test_init_picks_an_agent_cli_on_path_and_agent_overrides_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": "# mine\n"})
    bin_dir = tmp_path / "agent-bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text("#!/bin/sh\necho '2.1.197 (Claude Code)'\n")
    claude.chmod(0o755)
    path = f"{bin_dir}:{plain_path(tmp_path)}"

    found = oxi("init", "--json", cwd=repo.root, path=path)
    forced = oxi("init", "--json", "--force", "--agent", "exec", cwd=repo.root, path=path)
    again = oxi("init", cwd=repo.root, path=path)

    assert json.loads(found.stdout)["worker"] == {"type": "claude", "program": str(claude)}
    assert json.loads(found.stdout)["written"] == ["oxi.toml"]  # roadmap and .gitignore kept
    assert (repo.root / "roadmap.md").read_text() == "# mine\n"
    assert json.loads(forced.stdout)["worker"]["type"] == "exec"
    assert '[agents.script]\ntype = "exec"' in (repo.root / "oxi.toml").read_text()
    assert again.returncode == 1 and "oxi.toml exists (pass --force" in again.stderr
