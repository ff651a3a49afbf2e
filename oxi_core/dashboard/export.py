"""`oxi dashboard --export DIR`: the same pages as static files (a CI artifact, a shared drive):
index.html, one page per task under tasks/, the stylesheet, and the panels' JSON documents
under api/. A snapshot: no script, no live updates, every link relative."""

from __future__ import annotations

import json
from pathlib import Path

from oxi_core.dashboard.app import API, Dashboard, asset
from oxi_core.dashboard.queries import EventFilter
from oxi_core.dashboard.render import Links, task_file
from oxi_core.errors import OxiError


def export(dashboard: Dashboard, dest: Path) -> list[Path]:
    """Write the pages into ``dest`` (created; files of an earlier export are replaced, nothing
    else there is touched). Returns the files written."""
    if dest.exists() and not dest.is_dir():
        raise OxiError(f"{dest} is a file; --export needs a folder",
                       hint="name a folder (it is created if missing)")
    written: list[Path] = []

    def write(relative: str, data: bytes) -> None:
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)

    wanted = EventFilter()
    write("index.html", dashboard.overview(Links(static=True, root=""), wanted,
                                           live=False).encode())
    write("assets/dashboard.css", asset("dashboard.css"))
    for name in API:
        doc = dashboard.document(name, dashboard.read(name, wanted=wanted))
        write(f"api/{name}.json", json.dumps(doc, indent=1, default=str).encode())
    with dashboard.ledger.snapshot():
        task_ids = [row[0] for row in dashboard.ledger.query("SELECT id FROM tasks ORDER BY id")]
    task_links = Links(static=True, root="../")
    for task_id in task_ids:
        _status, page = dashboard.task_page(task_links, str(task_id), live=False)
        write(f"tasks/{task_file(task_id)}", page.encode())
    return written
