"""Secrets and the command line: nothing an agent reports carries a secret into the ledger, and
the commands that only read need no secret at all (issue 9, points 6b and 6c)."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from oxi_core.ledger import Ledger
from tests.conftest import roadmap
from tests.unattended.support import run_oxi

SECRET = "oxi-test-secret-4f9c2d7e1b"  # a registered secret: no known key shape
KEY_SHAPED = "sk-ant-api03-" + "Q" * 40  # a key shape the redactor knows without registering
UNSET = "OXI_TEST_AGENT_KEY"


@pytest.fixture
def secret_repo(repo_factory):
    """A repository whose agent gets a secret from the environment and reports it back as its
    session id, which then lands in events.session_id and tasks.session_id."""
    repo = repo_factory(roadmap(("T1-5", "a note", "writes notes/T1-5.txt")))
    toml = repo.config.read_text().replace(
        "[agents.worker.kwargs.env]",
        f'[agents.worker.kwargs.env]\nAGENT_SESSION = {{ env = "{UNSET}" }}')
    assert toml != repo.config.read_text()
    repo.config.write_text(toml)
    return repo


def all_text_in(db: str) -> str:
    """Every value of every row of every table, as text."""
    conn = sqlite3.connect(db)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master "
                                                 "WHERE type = 'table'")]
        return "\n".join(repr(row) for table in tables
                         for row in conn.execute(f'SELECT * FROM "{table}"'))
    finally:
        conn.close()


@pytest.mark.parametrize("secret", [SECRET, KEY_SHAPED], ids=["registered", "key-shaped"])
def test_a_secret_an_agent_reports_as_its_session_id_is_never_stored_or_printed(
    secret_repo, secret: str
) -> None:
    ticked = run_oxi(["tick"], cwd=secret_repo.root, env={UNSET: secret})
    assert ticked.returncode == 0, ticked.stderr
    db = secret_repo.root / ".oxi" / "oxi.db"
    with Ledger(db) as ledger:
        assert ledger.task("T1-5").status == "merged"
        assert ledger.task("T1-5").session_id == "[REDACTED]"
        assert {e.session_id for e in ledger.events() if e.session_id} == {"[REDACTED]"}
    assert secret not in all_text_in(str(db))
    assert secret not in ticked.stdout + ticked.stderr

    tail = run_oxi(["ledger", "tail", "-n", "200", "--jsonl"], cwd=secret_repo.root,
                   env={UNSET: secret})
    assert tail.returncode == 0, tail.stderr
    assert secret not in tail.stdout + tail.stderr
    assert any(json.loads(line)["event"]["session_id"] == "[REDACTED]"
               for line in tail.stdout.splitlines())


def test_commands_that_only_read_or_flip_the_killswitch_need_no_secret(secret_repo) -> None:
    ticked = run_oxi(["tick"], cwd=secret_repo.root, env={UNSET: SECRET})
    assert ticked.returncode == 0, ticked.stderr

    assert UNSET not in os.environ  # so the commands below run without it
    for args in (["status"], ["status", "--json"], ["ledger", "tail", "--json"], ["pause"],
                 ["resume"], ["roadmap", "list"], ["shadow", "report"], ["probe"]):
        done = run_oxi(args, cwd=secret_repo.root)
        assert done.returncode == 0, (args, done.stderr)
        assert "is not set" not in done.stderr

    # Anything that runs an agent still needs it, and says which variable to set.
    for args in (["tick"], ["config", "check"], ["tick", "--dry-run"]):
        refused = run_oxi(args, cwd=secret_repo.root)
        assert refused.returncode != 0, args
        assert f"environment variable {UNSET} is not set" in refused.stderr, refused.stderr
        assert "agents.worker" in refused.stderr
