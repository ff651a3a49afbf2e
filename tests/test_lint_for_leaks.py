"""scripts/lint-for-leaks on a repository with planted violations: committed key shapes (and
fakes on the allow-list), auto-improve importing the dispatch path, oxi_core importing a
plugin, a plugin importing another's internals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from oxi_core.testing.repos import run_git

ROOT = Path(__file__).resolve().parents[1]
LINT = ROOT / "scripts" / "lint-for-leaks"
# Key shapes are built here, never written out, so this file holds none itself.
ANTHROPIC = "sk-ant-api03-" + "A1b2C3d4" * 12
OPENROUTER = "sk-or-v1-" + "0123456789abcdef" * 4
GITHUB = "ghp_" + "Z" * 36
XAI = "xai-" + "k" * 80
OPENAI = "sk-proj-" + "p" * 60
FAKE = "sk-ant-api03-" + "F" * 90


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LINT), "--root", str(root)], capture_output=True,
                          text=True, timeout=60, check=False)


def planted(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    run_git(["init", "-q"], root)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    run_git(["add", "-A"], root)
    return root


def test_the_tree_itself_is_clean() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout
    assert "no committed secret, no forbidden import" in result.stdout


def test_committed_keys_fail_and_known_fakes_are_allowed_by_name(tmp_path: Path) -> None:
    root = planted(tmp_path, {
        "deploy/.env": f"ANTHROPIC_API_KEY={ANTHROPIC}\nOPENROUTER={OPENROUTER}\n",
        "docs/setup.md": f"export GH_TOKEN={GITHUB}\nxai: {XAI}\nopenai: {OPENAI}\n"
                         "a placeholder is fine: sk-ant-...\n",
        "tests/fixtures/reply.json": f'{{"key": "{FAKE}"}}\n',
        "other/copy.txt": f"{FAKE}\n",
        "scripts/lint-for-leaks.allow": f"# fakes the tests use\ntests/fixtures/reply.json {FAKE}\n"
                                        f"tests/gone.json {FAKE}\n",
    })
    result = lint(root)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("deploy/.env:1: a committed Anthropic key") for line in lines)
    assert any(line.startswith("deploy/.env:2: a committed OpenRouter key") for line in lines)
    assert any(line.startswith("docs/setup.md:1: a committed GitHub token") for line in lines)
    assert any(line.startswith("docs/setup.md:2: a committed xAI key") for line in lines)
    assert any(line.startswith("docs/setup.md:3: a committed OpenAI key") for line in lines)
    # The fake is allowed where it is listed, not elsewhere; a stale entry is reported.
    assert not any(line.startswith("tests/fixtures/reply.json") for line in lines)
    assert any(line.startswith("other/copy.txt:1: a committed Anthropic key") for line in lines)
    assert any("tests/gone.json no longer holds" in line for line in lines)
    assert len(lines) == 7
    assert ANTHROPIC not in result.stdout  # the finding never prints the whole key


def test_imports_across_boundaries_fail(tmp_path: Path) -> None:
    root = planted(tmp_path, {
        "oxi_core/auto_improve/rank.py": "from oxi_core.engine.dispatch import Dispatcher\n",
        "oxi_core/commands/auto_improve.py": "def f():\n    import oxi_core.agentic.runner\n",
        "oxi_core/auto_improve/ok.py": "from oxi_core.inference.calls import complete_for_role\n",
        "oxi_core/engine/tick.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    import oxi_claude.adapter\n",
        "oxi_core/engine/ok.py": "from oxi_core.roadmap import load_roadmap\n",
        "plugins/oxi-a/oxi_a/source.py": "from oxi_b.internal import thing\nfrom oxi_b import Api\n"
                                         "from oxi_a.parts import mine\nimport oxi_core.models\n",
        "plugins/oxi-a/tests/test_a.py": "from oxi_b.internal import helper\n",
        "adapters/oxi-adapter-x/oxi_adapter_x/__init__.py": "import oxi_claude.events\n",
    })
    result = lint(root)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines == [
        "adapters/oxi-adapter-x/oxi_adapter_x/__init__.py:1: oxi_adapter_x imports "
        "oxi_claude.events, another plugin's internals; use oxi_claude's public API or move "
        "the shared code into oxi_core",
        "oxi_core/auto_improve/rank.py:1: auto-improve imports the dispatch path "
        "(oxi_core.engine.dispatch); it runs on a schedule, never inside dispatch",
        "oxi_core/commands/auto_improve.py:2: auto-improve imports the dispatch path "
        "(oxi_core.agentic.runner); it runs on a schedule, never inside dispatch",
        "oxi_core/engine/tick.py:3: oxi_core imports the plugin oxi_claude (oxi_claude.adapter);"
        " plugins depend on oxi_core, never the reverse",
        "plugins/oxi-a/oxi_a/source.py:1: oxi_a imports oxi_b.internal, another plugin's "
        "internals; use oxi_b's public API or move the shared code into oxi_core",
    ]
