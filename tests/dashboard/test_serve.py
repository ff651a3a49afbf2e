"""`oxi dashboard` as a process: it never writes the ledger, listens on loopback unless told
otherwise (and then warns), refuses what it should with one clear error, answers every JSON
endpoint with its version, and exports the same page as static files."""

from __future__ import annotations

import hashlib
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from oxi_core.testing.repos import TestRepo as Repo
from oxi_core.testing.repos import make_repo
from tests.conftest import roadmap
from tests.dashboard.support import dashboard
from tests.unattended.support import run_oxi

ENDPOINTS = ("board", "cost", "throughput", "shadow", "auto-improve", "events")


def get(url: str, *, host: str | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), error.headers


def files_of(ledger: Path) -> dict[str, tuple[str, int]]:
    """The ledger's files as they are: content digest and modification time."""
    found = {}
    for path in sorted(ledger.parent.glob(ledger.name + "*")):
        stat = path.stat()
        found[path.name] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns)
    return found


def test_the_dashboard_never_writes_the_ledger(own_repo: Repo, tmp_path: Path) -> None:
    ledger = own_repo.root / ".oxi" / "oxi.db"
    events_before = count_events(ledger)
    for wal in ("as the last writer left it", "folded back by a checkpoint"):
        if wal.startswith("folded"):
            checkpoint(ledger)
        before = files_of(ledger)
        with dashboard(own_repo.root) as server:
            for path in ("", "task/T1-3", "task/T1-6", "panel/board", "panel/events?type=x",
                         "api/live.json?after=0", "api/task/T1-3.json", "?type=task_failed",
                         *(f"api/{e}.json" for e in ENDPOINTS)):
                assert get(server.url + path)[0] == 200, path
            during = files_of(ledger)
        export = run_oxi(["dashboard", "--export", str(tmp_path / "out")], cwd=own_repo.root)
        assert export.returncode == 0, export.stderr
        after = files_of(ledger)
        # The database and its write-ahead log: not a byte, not a timestamp. (A reader of a
        # WAL database maps the -shm index, SQLite's own bookkeeping, and creates an empty log
        # when there is none; it never writes to either file.)
        for state in (during, after):
            assert state["oxi.db"] == before["oxi.db"], wal
            if "oxi.db-wal" in before:
                assert state["oxi.db-wal"] == before["oxi.db-wal"], wal
            else:
                assert ledger.with_name("oxi.db-wal").stat().st_size == 0, wal
    assert count_events(ledger) == events_before


def checkpoint(ledger: Path) -> None:
    from oxi_core.ledger.driver import connect

    conn = connect(str(ledger))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert not ledger.with_name("oxi.db-wal").exists() or \
        ledger.with_name("oxi.db-wal").stat().st_size == 0


def count_events(ledger: Path) -> int:
    return int(own_repo_sql(ledger, "SELECT count(*) FROM events")[0][0])


def own_repo_sql(ledger: Path, query: str) -> list[tuple[Any, ...]]:
    from oxi_core.ledger.driver import connect_read_only

    conn = connect_read_only(ledger)
    try:
        return [tuple(r) for r in conn.execute(query).fetchall()]
    finally:
        conn.close()


def test_every_endpoint_answers_a_versioned_document_with_safe_headers(
        ledger_repo: Repo) -> None:
    with dashboard(ledger_repo.root) as server:
        url = server.url
        for name in ENDPOINTS:
            status, body, headers = get(f"{url}api/{name}.json")
            doc = json.loads(body)
            assert (status, doc["version"], doc["endpoint"]) == (200, 1, name)
            assert headers["Content-Type"] == "application/json"
        status, body, headers = get(f"{url}api/task/T1-3.json")
        doc = json.loads(body)
        assert (status, doc["task"]["id"], len(doc["attempts"])) == (200, "T1-3", 2)
        status, body, _headers = get(f"{url}api/task/T9-9.json")
        assert (status, json.loads(body)["error"]) == (404, "no task T9-9 in the ledger")
        status, body, headers = get(url)
        assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert get(url + "nothing/here")[0] == 404
        assert get(url + "task/T9-9")[0] == 404
        assert get(url + "assets/dashboard.js")[2]["Content-Type"].startswith("text/javascript")
        # Another name for this machine (DNS rebinding from a web page): refused.
        status, body, _headers = get(url, host="attacker.example:80")
        assert status == 403 and b"localhost" in body
        assert get(url, host="localhost")[0] == 200


def test_it_listens_on_loopback_and_warns_when_told_to_listen_wider(
        ledger_repo: Repo) -> None:
    with dashboard(ledger_repo.root) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.stderr == ""
    with dashboard(ledger_repo.root, "--host", "0.0.0.0") as server:
        assert server.url.startswith("http://0.0.0.0:")
        assert server.stderr == (
            "oxi: warning: serving on 0.0.0.0, which other machines can reach: anyone who can "
            "connect reads the ledger (there is no login)\n")
        port = server.url.rsplit(":", 1)[1].rstrip("/")
        # Bound to every address, it answers any Host: the operator chose that.
        assert get(f"http://127.0.0.1:{port}/api/live.json", host="dashboard.lan")[0] == 200


def test_clear_errors_and_nothing_created(ledger_repo: Repo, tmp_path: Path) -> None:
    fresh = make_repo(tmp_path, {"roadmap.md": roadmap(("T1-1", "one", "a"))}, name="fresh")
    missing = run_oxi(["dashboard", "--port", "0"], cwd=fresh.root)
    assert missing.returncode == 1
    assert missing.stderr == (f"oxi: error: no ledger at {fresh.root / '.oxi' / 'oxi.db'} (run "
                              "`oxi tick` first: a reader never creates the ledger)\n")
    assert not (fresh.root / ".oxi").exists()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_oxi(["dashboard", "--port", str(port)], cwd=ledger_repo.root)
    assert busy.returncode == 1
    assert busy.stderr == (f"oxi: error: port {port} on 127.0.0.1 is in use (pass --port N "
                           "(--port 0 picks a free one))\n")

    both = run_oxi(["dashboard", "--export", str(tmp_path / "x"), "--port", "9"],
                   cwd=ledger_repo.root)
    assert both.returncode == 2 and "--export writes files and serves nothing" in both.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    refused = run_oxi(["dashboard", "--export", str(a_file)], cwd=ledger_repo.root)
    assert refused.returncode == 1 and "is a file; --export needs a folder" in refused.stderr

    foreign = make_repo(tmp_path, {}, name="foreign").root
    (foreign / ".oxi").mkdir()
    import sqlite3

    with sqlite3.connect(foreign / ".oxi" / "oxi.db") as conn:
        conn.execute("CREATE TABLE notes (x)")
    conn.close()
    other = run_oxi(["dashboard", "--port", "0"], cwd=foreign)
    assert other.returncode == 1 and "is not an oxi ledger" in other.stderr


def test_export_writes_the_same_page_as_static_files(ledger_repo: Repo, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = run_oxi(["dashboard", "--export", str(out), "--json"], cwd=ledger_repo.root)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["version"], doc["command"], doc["tasks"]) == (1, "dashboard", 7)
    index = (out / "index.html").read_text()
    assert 'href="tasks/T1-3.html"' in index and 'href="assets/dashboard.css"' in index
    assert "<script" not in index.replace("&lt;script", "")  # a snapshot runs nothing
    task = (out / "tasks" / "T1-6.html").read_text()
    assert 'href="../index.html"' in task and 'href="../assets/dashboard.css"' in task
    assert "&lt;script&gt;window.__title_ran = 1&lt;/script&gt;" in task
    with dashboard(ledger_repo.root) as server:
        for name in ENDPOINTS:
            exported = json.loads((out / "api" / f"{name}.json").read_text())
            live = json.loads(get(f"{server.url}api/{name}.json")[1])
            for doc_ in (exported, live):
                doc_.pop("generated_at")
            # Measured from the moment of reading: heartbeat ages, health windows' bounds.
            for row in [*exported.get("columns", {}).get("in_flight", []),
                        *live.get("columns", {}).get("in_flight", [])]:
                row.pop("last_event_age_s")
            for window in [*exported.get("acceptance", []), *live.get("acceptance", [])]:
                window.pop("start"), window.pop("end")
            assert exported == live, name
