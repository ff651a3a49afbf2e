"""The contract auto-improve offers plugins: [auto_improve] settings, candidates' keys, and the
forge's optional merged_prs(since)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oxi_core.auto_improve.settings import AutoImproveSettings
from oxi_core.config import load_config
from oxi_core.errors import ConfigError
from oxi_core.models import Candidate, PullRequestState
from oxi_core.testing.repos import exec_agent_toml, make_repo


def _repo(tmp_path: Path, extra: str) -> Path:
    repo = make_repo(tmp_path, {"roadmap.md": "# roadmap\n"})
    repo.write("oxi.toml", exec_agent_toml(["true"]) + extra)
    return repo.config


def test_auto_improve_defaults_without_the_table(tmp_path: Path) -> None:
    config = load_config(_repo(tmp_path, ""))
    assert config.auto_improve == AutoImproveSettings()
    assert config.auto_improve.daily_cap_usd == 5.0
    assert config.auto_improve.acceptance_threshold == 0.15
    assert config.auto_improve.top_k == 15


def test_auto_improve_table_is_read_and_reaches_plugins(tmp_path: Path) -> None:
    config = load_config(_repo(tmp_path, """
[auto_improve]
daily_cap_usd = 2
accounts = { x = ["karpathy", "simonw"], github_orgs = ["anthropics"] }
model_dir = "models/minilm"
"""))
    settings = config.auto_improve
    assert settings.daily_cap_usd == 2.0
    assert settings.accounts["x"] == ("karpathy", "simonw")
    assert settings.model_dir == (config.config_dir / "models/minilm").resolve()
    # What a source's bind(context) sees.
    assert config.context.auto_improve is settings


@pytest.mark.parametrize(("body", "key", "words"), [
    ("top_k = 0", "top_k", "at least 1"),
    ("acceptance_threshold = 1.5", "acceptance_threshold", "between 0 and 1"),
    ("min_relevance = 6", "min_relevance", "from 1 to 5"),
    ("daily_cap = 5", "daily_cap", "unknown key"),
    ('accounts = { x = "karpathy" }', "accounts['x']", "expected a list"),
    ('sources = ["nowhere"]', "sources", "not configured"),
])
def test_bad_auto_improve_keys_name_the_key(tmp_path: Path, body: str, key: str,
                                            words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_repo(tmp_path, f"\n[auto_improve]\n{body}\n"))
    message = str(caught.value)
    assert "[auto_improve]" in message
    assert f"key {key!r}" in message
    assert words in message


def test_candidate_keys() -> None:
    release = Candidate(source="github", identifier="https://x/y/releases/v1", title="v1",
                        signal_kind="github_release", target="x/y")
    assert release.key == "github:https://x/y/releases/v1"
    assert release.target_key == "github_release:x/y"
    bare = Candidate(source="news", identifier="post-1", title="t", summary="s",
                     signal_kind="newsletter_post")
    assert bare.target_key == "newsletter_post:post-1"
    assert bare.text == "t\ns"


def test_local_forge_lists_merged_pull_requests_since(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"roadmap.md": "# roadmap\n"})
    repo.write("oxi.toml", exec_agent_toml(["true"]))
    config = load_config(repo.config)
    forge = config.forge
    for number, name in enumerate(("one", "two"), start=1):
        repo.git("checkout", "-q", "-b", f"oxi/{name}", "main")
        repo.write(f"{name}.txt", name)
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", name)
        repo.git("push", "-q", "origin", f"oxi/{name}")
        repo.git("checkout", "-q", "main")
        pr = forge.open_pr(task_id=f"T1-{number}", branch=f"oxi/{name}", title=f"add {name}",
                           body=f"why {name}")
        if name == "one":
            forge.arm_auto_merge(pr.number)
    merged = forge.merged_prs(datetime.now(UTC) - timedelta(days=90))
    assert [(pr.title, pr.body, pr.state) for pr in merged] == [
        ("add one", "why one", PullRequestState.MERGED)]
    assert merged[0].merged_at is not None
    assert forge.merged_prs(datetime.now(UTC) + timedelta(minutes=1)) == []


def test_help_imports_nothing_heavy() -> None:
    """`oxi --help` and `oxi auto-improve --help` never import the embedding stack."""
    import subprocess
    import sys

    probe = ("import sys\nfrom oxi_core.cli import main\n"
             "for argv in (['--help'], ['auto-improve', '--help'], ['auto-improve', 'scan', "
             "'--help']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('fastembed', 'numpy', 'sqlite_vec', 'onnxruntime', "
             "'tokenizers', 'oxi_core.auto_improve.ranking') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
