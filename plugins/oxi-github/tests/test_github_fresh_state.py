"""Two `oxi tick` processes started at the same moment on a repository oxi has never run in
both succeed: the ledger and the GitHub response cache beside it are each created once, whole,
with no "database is locked" or "table already exists" from the process that came second."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from github_fixtures import GitHubRepo, ledger_of, oxi_env, roadmap
from oxi_github.cache import shared_cache

from oxi_core.ledger import events as ev
from oxi_core.ledger.migrations import MIGRATIONS
from oxi_core.testing.together import start_oxi_together, start_python_together

ROUNDS = 6  # the race is a few milliseconds wide: each round starts from a new state folder


def test_two_ticks_on_a_new_repository_both_succeed(
    github_repo: Callable[..., GitHubRepo], tmp_path: Path,
) -> None:
    # Nothing to dispatch: each tick creates the state and asks GitHub for its pull requests.
    repo = github_repo(roadmap() + "\n## Done\n\n**T1-1 · said hello**\n_n_\n")
    state = repo.root / ".oxi"
    for round_ in range(ROUNDS):
        shutil.rmtree(state, ignore_errors=True)  # a repository oxi has never run in

        procs = start_oxi_together([["tick"], ["tick"]], gate=tmp_path / f"gate{round_}",
                                   cwd=repo.root, env=oxi_env(repo))
        outcomes = [(proc.wait(timeout=300), proc.communicate()[1]) for proc in procs]

        for code, stderr in outcomes:
            assert code == 0, f"round {round_}: {stderr[-3000:]}"
        with ledger_of(repo) as ledger:
            applied = [row[0] for row in ledger.conn.execute("SELECT name FROM _migrations")]
            assert applied == [name for name, _ in MIGRATIONS]  # each once, in order
            assert ledger.count_events(ev.FORGE_REQUESTS) == 2  # each tick asked GitHub
        assert (state / "github" / "cache.sqlite").is_file()
        assert not (state / "backups").exists()  # a new ledger is not a migrated one


OPEN_THE_CACHE = """
from oxi_github.cache import shared_cache
wait_for_the_others()
cache = shared_cache(Path(sys.argv[1]))
cache.remember(f"opened by {sys.argv[2]}", True)
cache.close()
"""


def test_processes_creating_the_response_cache_at_once_all_succeed(tmp_path: Path) -> None:
    # The cache's part of the race above, without the tick around it that makes it rare:
    # three processes create the same new cache file at the same moment, many times over.
    for round_ in range(4 * ROUNDS):
        state = tmp_path / f"state{round_}"
        procs = start_python_together(OPEN_THE_CACHE, [[str(state), str(n)] for n in range(3)],
                                      gate=tmp_path / f"gate{round_}", cwd=tmp_path)
        outcomes = [(proc.wait(timeout=120), proc.communicate()[1]) for proc in procs]

        for code, stderr in outcomes:
            assert code == 0, f"round {round_}: {stderr[-3000:]}"
        cache = shared_cache(state)
        assert [cache.fact(f"opened by {n}") for n in range(3)] == [True, True, True]
        cache.close()
