"""README's "Using oxi on your repository", done as a new user would: the wheels of every
distribution built from this checkout, installed by pip into a new virtualenv outside it
(dependencies from the package index, oxi's own distributions only from the wheels), then the
README's first-run lines run exactly as written on a new repository with a bare origin, with
a script as the agent (no key), to a merged pull request."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from oxi_core.entrypoints import canonical
from oxi_core.testing.repos import make_repo

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECTION = "## Using oxi on your repository"
# What a daemon line would start; the first run stops before it.
LONG_RUNNING = ("saturate", "dashboard")  # they serve until stopped

AGENT_SCRIPT = """\
#!/bin/sh
# The first run's agent: no model, no key. It writes what the item asks for.
mkdir -p notes
echo "$OXI_TASK_ID done" > "notes/$OXI_TASK_ID.txt"
"""
UNITTEST = """\
import pathlib
import unittest


class NotesTest(unittest.TestCase):
    def test_every_note_says_done(self):
        for note in pathlib.Path("notes").glob("*.txt"):
            self.assertTrue(note.read_text().endswith("done\\n"), note)
"""
ROADMAP = """\
# Roadmap

## Tier 1

**T1-1 · Write the first note**
_`notes/T1-1.txt` says the item is done._
"""


def readme_first_run() -> list[list[str]]:
    """The shell lines of README's first-run block, as argv lists, comments dropped."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    block = re.search(r"```sh\n(?P<body>.*?)```", section, re.DOTALL)
    assert block is not None, f"README's {SECTION!r} has no ```sh block"
    return [argv for line in block["body"].splitlines()
            if (argv := shlex.split(line, comments=True))]


def run(argv: list[str], *, cwd: Path, env: dict[str, str],
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, (f"`{shlex.join(argv)}` exited {done.returncode}\n"
                                  f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}")
    return done


def clean_env(path: str, home: Path) -> dict[str, str]:
    """The operator's shell: no oxi, coverage or pytest variables, nothing on PYTHONPATH."""
    drop = ("OXI_", "PYTEST_", "COV_", "COVERAGE", "PYTHONPATH", "VIRTUAL_ENV", "UV_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "PATH": path, "HOME": str(home)}


def tools_only_path(folder: Path) -> Path:
    """git, sh and a plain python3 (for the repository's own tests): no claude, no codex, and
    not the checkout's virtualenv."""
    folder.mkdir()
    for tool in ("git", "sh", "mkdir", "echo"):
        found = subprocess.run(["which", tool], capture_output=True, text=True, check=True)
        (folder / tool).symlink_to(found.stdout.strip())
    (folder / "python3").symlink_to(Path(sys.base_prefix) / "bin" / "python3")
    return folder


@pytest.mark.slow
def test_readme_first_run_from_built_wheels_merges_a_pull_request(tmp_path: Path) -> None:
    lines = readme_first_run()
    install, cd, *commands = lines
    assert install[:2] == ["pip", "install"], install
    assert cd[0] == "cd", cd
    first_run = []
    for argv in commands:
        assert argv[0] == "oxi", argv
        if argv[1] in LONG_RUNNING:
            break
        first_run.append(argv)
    assert [argv[1] for argv in first_run][:3] == ["init", "config", "roadmap"]
    assert ["oxi", "tick"] in first_run

    # Every distribution's wheel, built from this checkout.
    dist = tmp_path / "dist"
    uv = Path(sys.executable).with_name("uv")
    run([str(uv), "build", "--all-packages", "--wheel", "-o", str(dist), "-q"], cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("UV_")})
    wheels = {canonical(path.name.split("-")[0]): path for path in dist.glob("*.whl")}
    members = [ROOT, *ROOT.glob("plugins/*/"), *ROOT.glob("adapters/*/")]
    assert len(wheels) == sum((m / "pyproject.toml").is_file() for m in members)

    # A new virtualenv outside the checkout; the README's distributions from their wheels,
    # every dependency from the package index.
    venv = tmp_path / "venv"
    run([str(Path(sys.base_prefix) / "bin" / "python3"), "-m", "venv", str(venv)],
        cwd=tmp_path, env=clean_env(os.environ["PATH"], tmp_path))
    named = install[2:]
    assert "oxi-engine" in named and "oxi" not in named
    run([str(venv / "bin" / "pip"), "install", "-q", *(str(wheels[canonical(n)]) for n in named)],
        cwd=tmp_path, env=clean_env(os.environ["PATH"], tmp_path), timeout=600)

    # The operator's repository: tests, an agent script, a roadmap; a bare origin.
    repo = make_repo(tmp_path, {"roadmap.md": ROADMAP, "tests/test_notes.py": UNITTEST,
                                "scripts/oxi-agent.sh": AGENT_SCRIPT}, name="your-repo")
    (repo.root / "scripts" / "oxi-agent.sh").chmod(0o755)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "the agent script is executable")
    repo.git("push", "-q", "origin", "main")
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(f"{venv / 'bin'}:{tools_only_path(tmp_path / 'tools')}", home)

    which = run(["python", "-c", "import oxi_core, sys; print(oxi_core.__file__)"],
                cwd=repo.root, env=env)
    assert which.stdout.startswith(str(venv)), which.stdout  # not the checkout's
    outputs = {shlex.join(argv): run(argv, cwd=repo.root, env=env).stdout
               for argv in first_run}

    assert "worker: exec (./scripts/oxi-agent.sh)" in outputs["oxi init"]
    assert outputs["oxi config check"].rstrip().endswith("ok")
    assert outputs["oxi tick"].startswith("oxi tick: dispatched T1-1, merged T1-1")
    assert repo.origin_file("notes/T1-1.txt") == "T1-1 done\n"
    assert "T1-1: Write the first note" in repo.origin_log()[0]
    # The dashboard's stylesheet and script are in the wheel (package data, not only .py).
    site = tmp_path / "site"
    run(["oxi", "dashboard", "--export", str(site)], cwd=repo.root, env=env)
    assert "T1-1" in (site / "tasks" / "T1-1.html").read_text()
    assert (site / "assets" / "dashboard.css").stat().st_size > 1000
    run(["python", "-c", "from oxi_core.dashboard.app import asset; "
                         "assert b'liveUrl' in asset('dashboard.js')"], cwd=repo.root, env=env)


def test_every_distribution_depends_on_oxi_engine_with_bounds_and_no_doc_installs_bare_oxi(
) -> None:
    import tomllib

    from oxi_core import __version__

    major_minor = ".".join(__version__.split(".")[:2])
    bounded = re.compile(rf"^oxi-engine>={re.escape(major_minor)},<\d+\.\d+$")
    manifests = [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("adapters/*/pyproject.toml")]
    assert manifests
    for manifest in manifests:
        deps = tomllib.loads(manifest.read_text())["project"]["dependencies"]
        on_core = [d for d in deps if canonical(re.split(r"[<>=!~;\[ ]", d)[0]) in
                   ("oxi", "oxi-engine")]
        assert len(on_core) == 1 and bounded.match(on_core[0]), (manifest, deps)
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"] == "oxi-engine"
    example = re.search(r"```toml\n(?P<body>\[project\]\nname = \"oxi-print\".*?)```",
                        (ROOT / "hookspecs.md").read_text(), re.DOTALL)
    assert example is not None
    assert bounded.match(tomllib.loads(example["body"])["project"]["dependencies"][0])
    docs = [README, ROOT / "hookspecs.md", *ROOT.glob("docs/**/*.md"),
            *ROOT.glob("plugins/*/README.md")]
    for doc in docs:
        for line in doc.read_text(encoding="utf-8").splitlines():
            if re.search(r"pip install\b", line):
                assert not re.search(r"pip install (-\S+ )*oxi(\s|$)", line), (doc, line)
