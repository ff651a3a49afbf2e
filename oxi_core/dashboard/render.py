"""The dashboard's HTML, rendered on the server from the panel documents of queries.py. The
same functions serve the live page, its panel refreshes and the static export; every value
reaches the page through markup.el/esc, so text from agents and roadmaps is shown, never run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from oxi_core.dashboard import chart
from oxi_core.dashboard.markup import Markup, clip, el, esc, join
from oxi_core.dashboard.queries import EVENT_LIMITS, EventFilter

# (id, heading) of the overview's panels, in page order.
PANELS = (("board", "Tasks"), ("cost", "Cost"), ("throughput", "Throughput"),
          ("shadow", "Agentic shadow"), ("auto-improve", "Auto-improve"),
          ("events", "Recent events"))
REASON_CHARS = 600
FINDING_CHARS = 4000


@attrs.frozen
class Links:
    """Where links point: the live server's paths, or the export's relative files."""

    static: bool = False
    root: str = "/"

    def index(self, fragment: str = "") -> str:
        return (f"{self.root}index.html" if self.static else self.root) + fragment

    def task(self, task_id: Any) -> str:
        if self.static:
            return f"{self.root}tasks/{task_file(task_id)}"
        return f"{self.root}task/{quote(str(task_id), safe='')}"

    def asset(self, name: str) -> str:
        return f"{self.root}assets/{name}"

    def panel(self, name: str, query: Mapping[str, str] | None = None) -> str | None:
        if self.static:
            return None
        return f"{self.root}panel/{name}" + (f"?{urlencode(query)}" if query else "")


def task_file(task_id: Any) -> str:
    """The export's file for a task: its id when that is a plain name, else a digest of it."""
    import hashlib
    import re

    text = str(task_id)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", text):
        return f"{text}.html"
    return f"task-{hashlib.sha256(text.encode()).hexdigest()[:16]}.html"


@attrs.frozen
class Panel:
    """A panel's document, or why it could not be read (the rest of the page still shows)."""

    name: str
    doc: dict[str, Any] | None = None
    error: str | None = None


@attrs.frozen
class PageInfo:
    title: str
    ledger: str
    generated_at: str
    live: bool = False
    token: str = ""
    last_event_id: int = 0
    note: str | None = None  # oxi.toml could not be read: what the page falls back on


# -- formatting -----------------------------------------------------------------------------


def number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def usd(value: Any) -> str:
    return f"${number(value):,.4f}"


def percent(value: Any) -> str:
    return "n/a" if value is None else f"{number(value) * 100:.1f}%"


def when(ts: Any) -> Markup:
    """A ledger timestamp, readable, with the full value for machines."""
    if not ts:
        return esc("-")
    text = str(ts)
    return el("time", text[:19].replace("T", " "), datetime=text, title=text)


def ago(seconds: Any) -> str:
    value = number(seconds)
    if value < 90:
        return f"{value:.0f} s ago"
    if value < 5400:
        return f"{value / 60:.0f} min ago"
    if value < 129600:
        return f"{value / 3600:.1f} h ago"
    return f"{value / 86400:.1f} d ago"


def table(caption: Any, headers: Sequence[str], rows: Sequence[Markup], *, id_: str,
          more: int = 0, empty: str = "none", class_: str | None = None) -> Markup:
    """A semantic table (caption, column headers) in a scrolling region named by its caption,
    so a phone scrolls the table and not the page."""
    head = el("thead", el("tr", join(el("th", name, scope="col") for name in headers)))
    body_rows = list(rows) or [el("tr", el("td", empty, colspan=len(headers), class_="empty"))]
    foot = (el("tfoot", el("tr", el("td", f"and {more:,} more", colspan=len(headers))))
            if more > 0 else None)
    return el("div", el("table", el("caption", caption, id=f"{id_}-caption"), head,
                        el("tbody", join(body_rows)), foot, id=id_, class_=class_),
              class_="scroll", tabindex="0", role="region", aria_labelledby=f"{id_}-caption")


def task_cell(links: Links, task_id: Any, title: Any = None) -> Markup:
    link = el("a", task_id or "-", href=links.task(task_id)) if task_id else esc("-")
    return el("td", link, " ", el("span", clip(title, 160), class_="title") if title else None)


def figure(name: str, label: str, value: str) -> Markup:
    return el("div", el("dt", label), el("dd", value, data_figure=name), class_="figure")


def figures(*items: Markup) -> Markup:
    return el("dl", join(items), class_="figures")


# -- the board ------------------------------------------------------------------------------


def _why(row: Mapping[str, Any]) -> Markup:
    return el("td", clip(row.get("reason") or row.get("last_error") or "", REASON_CHARS),
              class_="why")


def _pr(value: Any) -> Markup:
    return el("td", f"#{value}" if value not in (None, "") else "-")


BOARD_COLUMNS: tuple[tuple[str, str, tuple[str, ...],
                           Callable[[Links, Mapping[str, Any]], Sequence[Markup]]], ...] = (
    ("in_flight", "In flight", ("Task", "Agent", "Attempt", "Heartbeat", "Last event"),
     lambda links, r: (
         task_cell(links, r.get("id"), r.get("title")),
         el("td", " ".join(str(x) for x in (r.get("agent"), r.get("model")) if x) or "-"),
         el("td", r.get("attempt")),
         el("td", el("time", ago(r.get("last_event_age_s")), datetime=r.get("heartbeat_at"),
                     data_since=r.get("heartbeat_at"))
            if r.get("heartbeat_at") else "none yet"),
         el("td", r.get("last_event") or "starting"))),
    ("retrying", "Retrying", ("Task", "Attempt", "Next attempt", "Why"),
     lambda links, r: (
         task_cell(links, r.get("id"), r.get("title")), el("td", r.get("attempts")),
         el("td", el("time", str(r.get("due"))[:19].replace("T", " "), datetime=r.get("due"),
                     data_until=r.get("due"), title=r.get("due")) if r.get("due") else "now"),
         _why(r))),
    ("held", "Held", ("Task", "Why"),
     lambda links, r: (task_cell(links, r.get("id"), r.get("title")), _why(r))),
    ("failed", "Failed", ("Task", "Attempts", "Why"),
     lambda links, r: (task_cell(links, r.get("id"), r.get("title")),
                       el("td", r.get("attempts")), _why(r))),
    ("in_review", "In review", ("Task", "Pull request", "Attempts"),
     lambda links, r: (task_cell(links, r.get("id"), r.get("title")), _pr(r.get("pr")),
                       el("td", r.get("attempts")))),
    ("merged", "Merged", ("Task", "Pull request", "Merged"),
     lambda links, r: (task_cell(links, r.get("id"), r.get("title")), _pr(r.get("pr")),
                       el("td", when(r.get("merged_at"))))),
    ("planned", "Planned", ("Task", "Tier", "Note"),
     lambda links, r: (task_cell(links, r.get("id"), r.get("title")), el("td", r.get("tier")),
                       _why(r))),
    ("skipped", "Skipped", ("Task", "Why"),
     lambda links, r: (task_cell(links, r.get("id"), r.get("title")), _why(r))),
)


def board(doc: Mapping[str, Any], links: Links) -> Markup:
    counts = doc.get("counts") or {}
    summary = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    paused = (el("p", el("strong", "Paused"), ": ", doc.get("paused_reason") or "",
                 " (`oxi resume` to continue)", class_="alert", role="note")
              if doc.get("paused") else None)
    columns = doc.get("columns") or {}
    totals = doc.get("totals") or {}
    tables = []
    for name, heading, headers, cells in BOARD_COLUMNS:
        rows = columns.get(name) or []
        total = int(number(totals.get(name, len(rows))))
        tables.append(table(
            Markup(f"{esc(heading)} {el('span', f'({total:,})', class_='count')}"), headers,
            [el("tr", join(cells(links, row)), data_task=row.get("id")) for row in rows],
            id_=f"board-{name}", more=total - len(rows), class_="board"))
    return join([paused, el("p", "Tasks: ", summary or "none yet", class_="summary",
                             data_figure="counts"),
                 el("div", join(tables), class_="columns")])


# -- money and throughput ---------------------------------------------------------------------


def cost(doc: Mapping[str, Any], links: Links) -> Markup:
    today, cap = number(doc.get("today_usd")), doc.get("daily_cap_usd")
    days = doc.get("days") or []
    keys = doc.get("by_role_model") or []
    totals = {str(k.get("label")): number(k.get("cost_usd")) for k in keys}
    colours = chart.series_colours(totals)
    if cap:
        spent = el("p", "Today ", el("strong", usd(today), data_figure="today"), " of the ",
                   el("span", usd(cap), data_figure="cap"), " daily cap (",
                   el("span", percent(doc.get("cap_used")), data_figure="cap-used"), ")")
        meter = el("meter", usd(today), min="0", max=f"{number(cap):.6f}",
                   value=f"{min(today, number(cap)):.6f}", low=f"{number(cap) * 0.5:.6f}",
                   high=f"{number(cap) * 0.8:.6f}", optimum="0",
                   aria_label="Today's spend against the daily cap", class_="cap")
    else:
        spent = el("p", "Today ", el("strong", usd(today), data_figure="today"),
                   " (no daily cap known)")
        meter = None
    drawn = chart.stacked_bars(
        [(str(day.get("day")), {str(k): number(v) for k, v in (day.get("by") or {}).items()})
         for day in days], colours, chart_id="cost-chart",
        title=f"Cost per day, last {doc.get('window_days')} days, by role and model",
        description=f"{usd(doc.get('total_usd'))} in all; the table below has every figure.",
        fmt=lambda v: f"${v:,.2f}")
    by_key = table("By role and model, last 30 days", ("Role", "Model", "Events", "Cost"), [
        el("tr", el("td", k.get("role")), el("td", k.get("model") or "-"),
           el("td", k.get("events"), class_="num"), el("td", usd(k.get("cost_usd")),
                                                        class_="num"),
           data_key=k.get("label"))
        for k in keys], id_="cost-by-key")
    by_day = el("details", el("summary", "Cost by day"), table(
        "Cost by day", ("Day", "Cost"),
        [el("tr", el("td", day.get("day")), el("td", usd(day.get("cost_usd")), class_="num"),
            data_day=day.get("day")) for day in days], id_="cost-by-day"))
    source = (el("p", "Read from every costed event: this ledger has not had migration "
                      "m011_spend_by_day yet (any oxi command that writes adds it).",
                 class_="muted") if doc.get("source") != "spend_by_day" else None)
    return join([spent, meter, figures(figure("total", "Last 30 days", usd(doc.get("total_usd")))),
                 drawn, chart.legend(colours, totals, usd), by_key, by_day, source])


def throughput(doc: Mapping[str, Any], links: Links) -> Markup:
    days = doc.get("days") or []
    drawn = chart.stacked_bars(
        [(str(day.get("day")), {"merged": number(day.get("merged"))}) for day in days],
        {"merged": chart.PALETTE[2]}, chart_id="merged-chart",
        title=f"Pull requests merged per day, last {doc.get('window_days')} days",
        description=f"{doc.get('merged')} merged in all.", fmt=lambda v: f"{v:.0f}")
    per = doc.get("attempts_per_merge")
    return join([
        figures(figure("merged", "Merged, last 30 days", f"{int(number(doc.get('merged'))):,}"),
                figure("attempts", "Attempts", f"{int(number(doc.get('attempts'))):,}"),
                figure("attempts-per-merge", "Attempts per merge",
                       "n/a" if per is None else f"{number(per):.2f}")),
        drawn,
        el("details", el("summary", "Merges and attempts by day"), table(
            "Merges and attempts by day", ("Day", "Merged", "Attempts"),
            [el("tr", el("td", day.get("day")), el("td", day.get("merged"), class_="num"),
                el("td", day.get("attempts"), class_="num"), data_day=day.get("day"))
             for day in days], id_="throughput-by-day")),
    ])


# -- shadow runs, auto-improve ------------------------------------------------------------------


def _side(side: Any) -> str:
    if not isinstance(side, Mapping):
        return "-"
    return (f"{side.get('agent') or '?'}: {side.get('classification') or '?'}, "
            f"{usd(side.get('cost_usd'))}")


def shadow(doc: Mapping[str, Any], links: Links) -> Markup:
    pairs = doc.get("pairs") or []
    rows = [el("tr", el("td", when(p.get("ts"))), task_cell(links, p.get("task")),
               el("td", _side(p.get("primary"))), el("td", _side(p.get("shadow"))),
               el("td", "yes" if p.get("shape_match") else "no"),
               el("td", usd(p.get("cost_delta_usd")), class_="num"), data_pair=p.get("pair_id"))
            for p in pairs]
    unreadable = int(number(doc.get("unreadable_events")))
    return join([
        figures(figure("pairs", "Pairs (last 50)", f"{int(number(doc.get('count'))):,}"),
                figure("agreement", "Agreement", percent(doc.get("agreement_rate"))),
                figure("cost-delta", "Cost delta (shadow − primary)",
                       usd(doc.get("cost_delta_usd"))),
                figure("primary-cost", "Primary cost", usd(doc.get("primary_cost_usd"))),
                figure("shadow-cost", "Shadow cost", usd(doc.get("shadow_cost_usd")))),
        el("p", f"{unreadable} shadow event(s) could not be read and are left out.",
           class_="muted") if unreadable else None,
        table("Paired runs, newest first", ("When", "Task", "Primary", "Shadow", "Same shape",
                                            "Δ cost"), rows, id_="shadow-pairs",
              empty="no shadow runs yet ([roles] shadow or OXI_AGENTIC_SHADOW turns them on)"),
    ])


def auto_improve(doc: Mapping[str, Any], links: Links) -> Markup:
    digest = doc.get("digest") if isinstance(doc.get("digest"), Mapping) else None
    state = f"paused: {doc.get('paused')}" if doc.get("paused") else "on"
    windows = [w for w in doc.get("acceptance") or [] if isinstance(w, Mapping)]
    facts = figures(
        figure("state", "State", state),
        figure("last-scan", "Last scan", str(doc.get("last_scan") or "never")[:19]),
        figure("staged", "Proposals staged", f"{int(number(doc.get('staged'))):,}"),
        figure("ai-spend", "Spent today", f"{usd(doc.get('spent_today_usd'))} of "
                                          f"{usd(doc.get('daily_cap_usd'))}"),
        figure("sources", "Sources", ", ".join(map(str, doc.get("sources") or [])) or "none"),
    )
    health = table(f"Acceptance (pauses below {percent(doc.get('acceptance_threshold'))} in both "
                   "windows)", ("Window", "Emitted", "Accepted", "Ratio"), [
        el("tr", el("td", f"{str(w.get('start'))[:10]} .. {str(w.get('end'))[:10]}"),
           el("td", w.get("emitted"), class_="num"), el("td", w.get("accepted"), class_="num"),
           el("td", percent(w.get("ratio")), class_="num")) for w in windows],
        id_="auto-improve-health")
    if digest is not None:
        fetched = digest.get("fetched") if isinstance(digest.get("fetched"), Mapping) else {}
        emitted = digest.get("emitted") if isinstance(digest.get("emitted"), list) else []
        scan = el("dl", join([
            el("dt", "Day"), el("dd", digest.get("day")),
            el("dt", "Digest"), el("dd", el("code", digest.get("digest") or "-")),
            el("dt", "Fetched"), el("dd", ", ".join(f"{k} {v}" for k, v in fetched.items())
                                    or "nothing"),
            el("dt", "Ranked"), el("dd", digest.get("ranked")),
            el("dt", "Proposed"), el("dd", ", ".join(map(str, emitted)) or "none"),
            el("dt", "Skipped"), el("dd", f"{digest.get('dedup')} duplicate(s), "
                                          f"{digest.get('fabricated')} fabricated, "
                                          f"{digest.get('held')} held by the budget, "
                                          f"{digest.get('failures')} source failure(s)"),
        ]), class_="facts", id="auto-improve-digest")
    else:
        scan = el("p", "No scan has finished yet (`oxi auto-improve scan`).", class_="muted")
    proposals = table("Proposals staged for review", ("ID", "Title", "Subtitle"), [
        el("tr", el("td", p.get("id")), el("td", clip(p.get("title"), 200)),
           el("td", clip(p.get("subtitle"), 300)), data_proposal=p.get("id"))
        for p in doc.get("proposals") or []], id_="auto-improve-proposals",
        empty="none staged")
    failures = doc.get("source_failures") or []
    failed = (el("ul", join(el("li", when(f.get("ts")), " ", f.get("source"), ": ",
                               clip(f.get("reason"), REASON_CHARS)) for f in failures),
                 class_="failures") if failures else None)
    return join([facts, el("h3", "Last scan"), scan, health, proposals,
                 el("h3", "Source failures") if failed else None, failed])


# -- events ---------------------------------------------------------------------------------


def event_rows(items: Sequence[Mapping[str, Any]], links: Links, *, with_task: bool = True
               ) -> list[Markup]:
    return [el("tr", el("td", e.get("id"), class_="num"), el("td", when(e.get("ts"))),
               el("td", el("code", e.get("type"))),
               task_cell(links, e.get("task")) if with_task else None,
               el("td", usd(e.get("cost_usd")) if number(e.get("cost_usd")) else "",
                  class_="num"),
               el("td", clip(e.get("detail"), 200), class_="why"), data_event_id=e.get("id"))
            for e in items]


def events(doc: Mapping[str, Any], links: Links) -> Markup:
    items = doc.get("events") or []
    return table(f"{len(items)} newest event(s)", ("#", "Time", "Type", "Task", "Cost", "Detail"),
                 event_rows(items, links), id_="events-table",
                 empty="no events match" if doc.get("filter") else "no events yet")


def event_filter_form(wanted: EventFilter, types: Sequence[str], links: Links) -> Markup:
    options = join(el("option", value=name) for name in types)
    return el("form", join([
        el("div", el("label", "Type", for_="filter-type"),
           el("input", id="filter-type", name="type", value=wanted.type, list="event-types",
              autocomplete="off", spellcheck="false"), class_="field"),
        el("datalist", options, id="event-types"),
        el("div", el("label", "Task", for_="filter-task"),
           el("input", id="filter-task", name="task", value=wanted.task, autocomplete="off",
              spellcheck="false", placeholder="T1-1"), class_="field"),
        el("div", el("label", "Show", for_="filter-limit"),
           el("select", join(el("option", str(n), value=str(n), selected=n == wanted.limit)
                             for n in EVENT_LIMITS), id="filter-limit", name="limit"),
           class_="field"),
        el("button", "Filter", type="submit"),
        el("a", "Clear", href=links.index("#events"), class_="clear"),
    ]), method="get", action=links.index("#events"), class_="filters", role="search",
              aria_label="Filter the events")


# -- a task -----------------------------------------------------------------------------------


def task(doc: Mapping[str, Any], links: Links) -> Markup:
    from oxi_core.engine.transcripts import describe

    found = doc.get("task")
    info: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    summary = el("dl", join([
        el("dt", "Status"), el("dd", info.get("status"), data_figure="status"),
        el("dt", "Attempts"), el("dd", info.get("attempts"), data_figure="attempts"),
        el("dt", "Cost"), el("dd", usd(info.get("cost_usd")), data_figure="cost"),
        el("dt", "Pull request"), el("dd", f"#{info['pr']}" if info.get("pr") else "-",
                                     data_figure="pr"),
        el("dt", "Why"), el("dd", clip(info.get("reason"), REASON_CHARS) or "-",
                            data_figure="reason"),
        el("dt", "Agent"), el("dd", " ".join(str(x) for x in (info.get("agent"),
                                                             info.get("model")) if x) or "-"),
        el("dt", "Branch"), el("dd", info.get("branch") or "-"),
        el("dt", "Worktree"), el("dd", el("code", info.get("worktree") or "-")),
    ]), class_="facts", id="task-summary")
    parts = [el("p", clip(info.get("subtitle"), 400), class_="subtitle")
             if info.get("subtitle") else None, summary]
    before = doc.get("before_dispatch") or []
    parts.append(table("Before the first dispatch", ("#", "Time", "Type", "Cost", "Detail"),
                       event_rows(before, links, with_task=False), id_="task-before"))
    for attempt in doc.get("attempts") or []:
        parts.append(_attempt(attempt, links))
    transcript = doc.get("transcript")
    parts.append(el("h2", "Transcript tail", id="transcript-h"))
    if not isinstance(transcript, Mapping):
        parts.append(el("p", "Not dispatched yet.", class_="muted"))
    elif not transcript.get("exists"):
        parts.append(el("p", f"No transcript for attempt {transcript.get('attempt')} (the agent "
                             f"printed nothing, or it was pruned): ",
                        el("code", transcript.get("path")), class_="muted"))
    else:
        records = [r if isinstance(r, Mapping) else {"kind": "unreadable", "data": {"text": r}}
                   for r in transcript.get("tail") or []]
        parts.append(el("p", f"Attempt {transcript.get('attempt')}, ",
                        el("code", transcript.get("path")), class_="muted"))
        parts.append(el("ol", join(el("li", el("code", describe(r, width=400)))
                                   for r in records), class_="transcript",
                        id="transcript", aria_labelledby="transcript-h"))
    return join(parts)


def _attempt(attempt: Mapping[str, Any], links: Links) -> Markup:
    n = attempt.get("attempt")
    who = " ".join(str(x) for x in (attempt.get("agent"), attempt.get("model")) if x)
    source = f" ({attempt.get('cost_source')})" if attempt.get("cost_source") else ""
    facts = el("dl", join([
        el("dt", "Claimed"), el("dd", when(attempt.get("claimed_at"))),
        el("dt", "Outcome"), el("dd", attempt.get("outcome"), data_figure="outcome"),
        el("dt", "Why"), el("dd", clip(attempt.get("reason"), REASON_CHARS) or "-"),
        el("dt", "Agent"), el("dd", f"{who or '?'}: {attempt.get('classification') or '-'}, "
                                    f"{attempt.get('turns') or 0} turns, "
                                    f"{attempt.get('duration_s') or 0} s"),
        el("dt", "Cost"), el("dd", usd(attempt.get("cost_usd")) + source, data_figure="cost"),
        el("dt", "Pull request"), el("dd", f"#{attempt['pr']}" if attempt.get("pr") else "-"),
        el("dt", "Worktree"), el("dd", el("code", attempt.get("worktree") or "-")),
    ]), class_="facts")
    critic = [el("li", el("strong", f"{v.get('critic')}: {v.get('verdict')}"),
                 join(el("pre", clip(reason, FINDING_CHARS), class_="wrap")
                      for reason in (v.get("reasons") or [])))
              for v in attempt.get("critic") or [] if isinstance(v, Mapping)]
    return el("section", el("h2", f"Attempt {n}: {attempt.get('outcome')}",
                            id=f"attempt-{n}-h"),
              facts, el("h3", "Critic") if critic else None,
              el("ul", join(critic), class_="critic") if critic else None,
              table(f"Events of attempt {n}", ("#", "Time", "Type", "Cost", "Detail"),
                    event_rows(attempt.get("events") or [], links, with_task=False),
                    id_=f"attempt-{n}-events"),
              class_="attempt", aria_labelledby=f"attempt-{n}-h",
              data_attempt=n)


# -- pages ----------------------------------------------------------------------------------

RENDERERS: dict[str, Callable[[Mapping[str, Any], Links], Markup]] = {
    "board": board, "cost": cost, "throughput": throughput, "shadow": shadow,
    "auto-improve": auto_improve, "events": events, "task": task,
}


def panel_body(panel: Panel, links: Links) -> Markup:
    """A panel's contents, or a note saying it could not be read (never the whole page)."""
    if panel.error is not None or panel.doc is None:
        return el("p", f"This panel could not be read from the ledger: {panel.error}",
                  class_="alert", role="alert")
    try:
        return RENDERERS[panel.name](panel.doc, links)
    except Exception as error:  # a row of an unexpected shape: this panel only
        return el("p", f"This panel could not be drawn: {type(error).__name__}: {error}",
                  class_="alert", role="alert")


def section(panel: Panel, heading: str, links: Links, *, src: str | None,
            before: Markup | None = None) -> Markup:
    return el("section", el("h2", heading, id=f"{panel.name}-h"), before,
              el("div", panel_body(panel, links), class_="panel-body", data_panel=panel.name,
                 data_src=src),
              id=panel.name, class_=f"panel panel-{panel.name}",
              aria_labelledby=f"{panel.name}-h")


def overview(panels: Mapping[str, Panel], info: PageInfo, links: Links, wanted: EventFilter,
             event_types: Sequence[str]) -> str:
    sections = []
    for name, heading in PANELS:
        query = wanted.as_query() if name == "events" else None
        before = (event_filter_form(wanted, event_types, links)
                  if name == "events" and not links.static else None)
        sections.append(section(panels[name], heading, links, src=links.panel(name, query),
                                before=before))
    nav = el("nav", el("ul", join(el("li", el("a", heading, href=f"#{name}"))
                                  for name, heading in PANELS)), aria_label="Panels")
    return page(info, links, el("h1", "oxi ", el("span", info.title, class_="repo")), nav,
                join(sections))


def task_page(panel: Panel, task_id: str, title: str, info: PageInfo, links: Links) -> str:
    nav = el("nav", el("a", "← All panels", href=links.index()), aria_label="Back")
    body = section(panel, "Timeline", links, src=links.panel("task", {"id": task_id}))
    return page(info, links, el("h1", el("span", task_id, class_="task-id"), " · ", title),
                nav, body)


def page(info: PageInfo, links: Links, heading: Markup, nav: Markup, main: Markup) -> str:
    status = ("Live: updates as the ledger changes." if info.live
              else "A snapshot: it does not update.")
    note = el("p", info.note, class_="alert", role="note") if info.note else None
    head = join([
        Markup('<meta charset="utf-8">'),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("meta", name="color-scheme", content="light dark"),
        el("title", f"oxi · {info.title}"),
        el("link", rel="stylesheet", href=links.asset("dashboard.css")),
        el("script", src=links.asset("dashboard.js"), defer=True) if info.live else None,
    ])
    body = el("body", join([
        el("a", "Skip to the panels", href="#main", class_="skip"),
        el("header", heading, el("p", "Ledger ", el("code", info.ledger), " (read-only) · ",
                                 "generated ", when(info.generated_at), " · ",
                                 el("span", status, id="live-status", role="status",
                                    aria_live="polite"), class_="meta"), note, nav),
        el("main", main, id="main", tabindex="-1"),
        el("footer", el("p", "Every figure is read from the ledger; nothing here changes it.")),
    ]), data_live="on" if info.live else "off", data_token=info.token,
        data_last_event=info.last_event_id, data_live_url=links.index() + "api/live.json"
        if info.live else None)
    return "<!doctype html>\n" + el("html", el("head", head), body, lang="en") + "\n"


def not_found(info: PageInfo, links: Links, what: str) -> str:
    return page(info, links, el("h1", "Not found"),
                el("nav", el("a", "← All panels", href=links.index()), aria_label="Back"),
                el("p", what))
