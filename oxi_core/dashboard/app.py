"""The dashboard's pages and documents over one read-only ledger: what the server answers and
what the export writes. Each panel is read on its own, inside one snapshot of the ledger, and
a panel that fails shows why while the others still render."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from typing import Any

from oxi_core.dashboard import queries, render
from oxi_core.dashboard.queries import EventFilter, Settings
from oxi_core.dashboard.render import Links, PageInfo, Panel
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.models import isoformat, utcnow

ASSETS = ("dashboard.css", "dashboard.js")
# The endpoints under /api/NAME.json (docs/json.md); /api/task/ID.json and /api/live.json too.
API = ("board", "cost", "throughput", "shadow", "auto-improve", "events")
EVENT_TYPES = tuple(sorted(value for name, value in vars(ev).items()
                           if name.isupper() and isinstance(value, str)))


def asset(name: str) -> bytes:
    return (importlib.resources.files("oxi_core.dashboard") / "assets" / name).read_bytes()


class Dashboard:
    def __init__(self, ledger: Ledger, settings: Settings, *, title: str | None = None) -> None:
        self.ledger = ledger
        self.settings = settings
        self.title = title or settings.paths.repo_root.name

    # -- documents --------------------------------------------------------------------------

    def read(self, name: str, *, wanted: EventFilter | None = None,
             task_id: str = "") -> Panel:
        """One panel's document; an error while reading it is the panel's, not the page's."""
        ledger, now = self.ledger, self.ledger.now()
        readers: dict[str, Callable[[], dict[str, Any] | None]] = {
            "board": lambda: queries.board(ledger, now),
            "cost": lambda: queries.cost(ledger, now, self.settings),
            "throughput": lambda: queries.throughput(ledger, now),
            "shadow": lambda: queries.shadow(ledger),
            "auto-improve": lambda: queries.auto_improve(ledger, self.settings),
            "events": lambda: queries.events(ledger, wanted or EventFilter()),
            "task": lambda: queries.task(ledger, self.settings.paths, task_id),
        }
        try:
            with ledger.snapshot():
                doc = readers[name]()
        except Exception as error:  # a damaged row or an older ledger: this panel only
            return Panel(name, error=f"{type(error).__name__}: {error}")
        if doc is None:
            return Panel(name, error=f"no task {task_id} in the ledger")
        return Panel(name, doc)

    def document(self, name: str, panel: Panel) -> dict[str, Any]:
        from oxi_core.commands.common import JSON_VERSION

        head = {"version": JSON_VERSION, "endpoint": name, "generated_at": isoformat(utcnow())}
        if panel.doc is None:
            return {**head, "error": panel.error}
        return {**head, **panel.doc}

    def live(self, after: int) -> dict[str, Any]:
        with self.ledger.snapshot():
            return self.document("live", Panel("live", queries.live(self.ledger, after)))

    # -- pages ------------------------------------------------------------------------------

    def info(self, *, live: bool) -> PageInfo:
        token, last = "", 0
        if live:
            state = queries.live(self.ledger, 1 << 62)
            token, last = state["token"], state["last_event_id"]
        return PageInfo(title=self.title, ledger=str(self.ledger.path),
                        generated_at=isoformat(utcnow()), live=live, token=token,
                        last_event_id=last, note=self._note())

    def _note(self) -> str | None:
        problem = self.settings.problem
        if problem is None:
            return None
        return (f"oxi.toml could not be read, so the daily cap and auto-improve settings are "
                f"unknown or defaults: {problem}")

    def overview(self, links: Links, wanted: EventFilter, *, live: bool) -> str:
        info = self.info(live=live)  # first: a change made while reading shows next poll
        panels = {name: self.read(name, wanted=wanted) for name, _heading in render.PANELS}
        return render.overview(panels, info, links, wanted, EVENT_TYPES)

    def task_page(self, links: Links, task_id: str, *, live: bool) -> tuple[int, str]:
        info = self.info(live=live)
        panel = self.read("task", task_id=task_id)
        if panel.doc is None and panel.error == f"no task {task_id} in the ledger":
            return 404, render.not_found(info, links, f"No task {task_id} in the ledger.")
        found = panel.doc.get("task") if panel.doc else None
        title = found.get("title") if isinstance(found, dict) else ""
        return 200, render.task_page(panel, task_id, str(title or ""), info, links)

    def panel_html(self, links: Links, name: str, *, wanted: EventFilter,
                   task_id: str = "") -> str:
        return render.panel_body(self.read(name, wanted=wanted, task_id=task_id), links)
