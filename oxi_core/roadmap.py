"""Parse and rewrite roadmap.md: the queue of items oxi works from.

The canonical item is a bold line ``**T{tier}-{N} · {title}**`` followed by an italic subtitle
line; ids may carry letters (``T1-B5``). The flattened form (a plain ``T0-104 · title`` line
followed by a description, or one line carrying status text after the title) is read too, as
are ``¶`` headings and a "Done" section listing shipped ids. A line that looks like an item but
cannot be parsed is a warning with its line number, never a crash and never silently dropped.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import attrs

from oxi_core.errors import RoadmapError

ID_PATTERN = r"T(?P<tier>\d+)-(?P<n>[A-Za-z0-9]+)"
_ID = re.compile(rf"^{ID_PATTERN}$")
_ANY_ID = re.compile(r"\bT\d+-[A-Za-z0-9]+\b")
_LIST = r"(?:[-*+]\s+|\d+\.\s+)?"
# A bold item: **T1-2 · title**  (the separator may be spaced loosely).
_BOLD = re.compile(rf"^\s*{_LIST}\*\*(?P<inner>.*?)\*\*\s*(?P<after>.*)$")
# Anything that starts like an id: T + something + '-' (catches T-1, Tx-3, T1-2 without '·').
_LOOKS_LIKE = re.compile(rf"^\s*{_LIST}(?:\*\*)?T[0-9A-Za-z]*-[0-9A-Za-z]*")
_SEPARATOR = re.compile(r"\s+·\s*|\s*·\s+|·")
_HEADING_MD = re.compile(r"^\s{0,3}(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
_TIER_HEADING = re.compile(r"\bTier\s+(?P<tier>\d+)\b", re.I)
_ITALIC = re.compile(r"^\s*(?:_(?P<u>.+)_|\*(?P<s>[^*].*[^*]|[^*])\*)\s*$")
# Where a flattened one-line item's title ends and its status text begins ("... PR #95 ...").
_STATUS_SPLIT = re.compile(r"\s+(?=PR #\d)")
_FILE_EXTENSIONS = (
    "py", "md", "toml", "yaml", "yml", "json", "jsonl", "sh", "txt", "cfg", "ini", "rs", "js",
    "ts", "tsx", "go", "rb", "java", "c", "h", "cpp", "sql", "html", "css", "lock", "plist",
    "service",
)
_BACKTICKED = re.compile(r"`([^`\s]+)`")
_BARE_PATH = re.compile(
    r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:" + "|".join(_FILE_EXTENSIONS) + r"))(?![\w/])"
)


@attrs.frozen
class RoadmapWarning:
    line: int
    message: str
    item_id: str | None = None
    severity: str = "warning"  # "error" makes `oxi roadmap lint` exit non-zero

    def __str__(self) -> str:
        return f"line {self.line}: {self.severity}: {self.message}"


@attrs.frozen
class RoadmapItem:
    id: str
    tier: int
    title: str
    subtitle: str = ""
    body: str = ""
    section: str = ""
    line: int = 0  # 1-based line of the item's own line
    end_line: int = 0  # last line (1-based, inclusive) of its subtitle and body
    done: bool = False
    files: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id, "tier": self.tier, "title": self.title, "subtitle": self.subtitle,
            "section": self.section, "line": self.line, "done": self.done,
            "files": list(self.files),
        }


@attrs.frozen
class Roadmap:
    items: tuple[RoadmapItem, ...]
    warnings: tuple[RoadmapWarning, ...] = ()
    done_ids: frozenset[str] = frozenset()
    # Ids named on lines that could not be parsed: their tasks must keep their status.
    unreadable_ids: frozenset[str] = frozenset()

    @property
    def open_items(self) -> list[RoadmapItem]:
        return [item for item in self.items if not item.done]

    @property
    def errors(self) -> list[RoadmapWarning]:
        return [w for w in self.warnings if w.severity == "error"]

    def get(self, item_id: str) -> RoadmapItem | None:
        for item in self.items:
            if item.id == item_id:
                return item
        return None


def extract_files(text: str) -> tuple[str, ...]:
    """Repository paths named in an item: backticked paths and path-like words."""
    found: set[str] = set()
    for token in _BACKTICKED.findall(text):
        token = token.strip(".,;:()")
        if "://" in token or token.startswith("-"):
            continue
        if "/" in token or token.rsplit(".", 1)[-1] in _FILE_EXTENSIONS:
            if re.fullmatch(r"[\w./-]+", token) and not token.startswith("/"):
                found.add(token.removeprefix("./"))
    for match in _BARE_PATH.finditer(_BACKTICKED.sub(" ", text)):
        token = match.group(1)
        if not token.startswith("/") and "://" not in token:
            found.add(token.removeprefix("./"))
    return tuple(sorted(found))


def _heading(line: str) -> str | None:
    stripped = line.strip()
    match = _HEADING_MD.match(line)
    if match:
        return match.group("text").rstrip("¶").strip()
    if stripped.endswith("¶"):
        return stripped.rstrip("¶").strip()
    return None


def _split_id_title(text: str) -> tuple[str, str] | None:
    """'T1-2 · title' -> ('T1-2', 'title'); None when there is no '·' separator."""
    parts = _SEPARATOR.split(text.strip(), maxsplit=1)
    if len(parts) != 2:
        return None
    return parts[0].strip(), parts[1].strip()


@attrs.define
class _Draft:
    id: str
    tier: int
    title: str
    section: str
    line: int
    canonical: bool
    status: str = ""
    lines: list[str] = attrs.field(factory=list)
    last_line: int = 0


def parse_roadmap(text: str) -> Roadmap:
    lines = text.splitlines()
    items: list[RoadmapItem] = []
    warnings: list[RoadmapWarning] = []
    done_ids: set[str] = set()
    unreadable: set[str] = set()
    seen: dict[str, int] = {}
    section = ""
    in_done = False
    draft: _Draft | None = None

    def close() -> None:
        nonlocal draft
        if draft is None:
            return
        items.append(_finish(draft, warnings))
        draft = None

    for number, line in enumerate(lines, start=1):
        heading = _heading(line)
        if heading is not None:
            close()
            section = heading
            in_done = heading.lower().startswith("done")
            continue
        if in_done:
            done_ids.update(_ANY_ID.findall(line))
            continue
        parsed = _parse_item_line(line)
        if parsed is None:
            if draft is not None and (line.strip() or draft.lines):
                draft.lines.append(line)
                if line.strip():
                    draft.last_line = number
            continue
        close()
        if isinstance(parsed, str):
            warnings.append(RoadmapWarning(number, parsed, _first_id(line), "error"))
            unreadable.update(_ANY_ID.findall(line))
            continue
        item_id, title, status, canonical = parsed
        match = _ID.match(item_id)
        assert match is not None
        if item_id in seen:
            warnings.append(RoadmapWarning(
                number, f"duplicate id {item_id} (first at line {seen[item_id]}); "
                "this one is ignored", item_id, "error"))
            continue
        seen[item_id] = number
        draft = _Draft(item_id, int(match.group("tier")), title, section, number, canonical,
                       status, last_line=number)
    close()
    items = [i for i in items if i.id not in done_ids] + [
        RoadmapItem(id=i, tier=int(_ID.match(i).group("tier")), title="", done=True,  # type: ignore[union-attr]
                    section="Done")
        for i in sorted(done_ids) if _ID.match(i)
    ]
    return Roadmap(tuple(items), tuple(sorted(warnings, key=lambda w: w.line)),
                   frozenset(done_ids), frozenset(unreadable - set(seen)))


def _first_id(line: str) -> str | None:
    found = _ANY_ID.findall(line)
    return found[0] if found else None


def _parse_item_line(line: str) -> tuple[str, str, str, bool] | str | None:
    """(id, title, status, canonical) for an item line, a warning message for a broken one,
    None for any other line."""
    if not _LOOKS_LIKE.match(line):
        return None
    bold = _BOLD.match(line)
    canonical = bold is not None
    text = bold.group("inner") if bold else re.sub(rf"^\s*{_LIST}", "", line)
    split = _split_id_title(text)
    if split is None:
        return "looks like an item but has no ' · ' between the id and the title"
    item_id, title = split
    if not _ID.match(item_id):
        return (f"bad id {item_id!r}: expected T{{tier}}-{{N}} with a numeric tier "
                "(for example T1-23 or T1-B5)")
    title = title.rstrip("*").strip()
    status = bold.group("after").strip() if bold else ""
    if not canonical:
        pieces = _STATUS_SPLIT.split(title, maxsplit=1)
        if len(pieces) == 2 and pieces[0].strip():
            title, status = pieces[0].strip(), pieces[1].strip()
    if not title:
        return f"item {item_id} has no title"
    return item_id, title, status, canonical


def _finish(draft: _Draft, warnings: list[RoadmapWarning]) -> RoadmapItem:
    body_lines = list(draft.lines)
    while body_lines and not body_lines[-1].strip():
        body_lines.pop()
    subtitle = ""
    non_blank = [(i, raw) for i, raw in enumerate(body_lines) if raw.strip()]
    if non_blank:
        first_index, first = non_blank[0]
        italic = _ITALIC.match(first)
        if italic:
            subtitle = (italic.group("u") or italic.group("s") or "").strip()
            body_lines = body_lines[first_index + 1:]
        elif not draft.canonical:
            subtitle = first.strip()
            body_lines = body_lines[first_index + 1:]
        else:
            warnings.append(RoadmapWarning(
                draft.line + first_index + 1,
                f"{draft.id} has no italic subtitle on the line after its title", draft.id))
    elif draft.canonical:
        warnings.append(RoadmapWarning(draft.line, f"{draft.id} has no italic subtitle",
                                       draft.id))
    if not subtitle and draft.status:
        subtitle = draft.status
    body = "\n".join(body_lines).strip("\n")
    text = " ".join((draft.title, subtitle, draft.status, body))
    return RoadmapItem(
        id=draft.id, tier=draft.tier, title=draft.title, subtitle=subtitle, body=body,
        section=draft.section, line=draft.line, end_line=draft.last_line,
        files=extract_files(text),
    )


def load_roadmap(path: Path) -> Roadmap:
    """Parse the roadmap at ``path``; RoadmapError when it cannot be read at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise RoadmapError(f"no roadmap at {path}",
                           hint="create roadmap.md, or point the adapter's `roadmap` at it") from error
    except (OSError, UnicodeDecodeError) as error:
        raise RoadmapError(f"cannot read {path}: {error}",
                           hint="the roadmap must be a readable UTF-8 text file") from error
    return parse_roadmap(text)


# -- rewriting --------------------------------------------------------------------------


def remove_items(text: str, ids: Iterable[str]) -> str:
    """``text`` byte for byte, minus the lines of the named items (and the blank lines that
    followed them). Line endings and a missing final newline are preserved."""
    wanted = set(ids)
    if not wanted:
        return text
    roadmap = parse_roadmap(text)
    kept = text.splitlines(keepends=True)
    drop: set[int] = set()
    for item in roadmap.items:
        if item.id in wanted and not item.done and item.line:
            start, end = item.line - 1, item.end_line  # 0-based, end exclusive
            while end < len(kept) and not kept[end].strip():
                end += 1
            drop.update(range(start, end))
    return "".join(line for index, line in enumerate(kept) if index not in drop)


def _id_mention(item_id: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9-]){re.escape(item_id)}(?![A-Za-z0-9])")


def substantive_commits(repo: Path, *, ref: str = "main",
                        roadmap_path: str = "roadmap.md") -> list[tuple[str, str]]:
    """(sha, message) of commits on ``ref`` that are not merges and touch a file other than
    the roadmap itself."""
    result = subprocess.run(
        ["git", "log", "--no-merges", "--format=%x1e%H%x1f%B%x1f", "--name-only", ref],
        cwd=repo, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RoadmapError(f"cannot read the history of {ref}: {result.stderr.strip()}",
                           hint="run prune inside the repository, with the base branch fetched")
    commits: list[tuple[str, str]] = []
    for record in result.stdout.split("\x1e"):
        if not record.strip():
            continue
        sha, message, names = (record.split("\x1f") + ["", ""])[:3]
        files = [name for name in names.split("\n") if name.strip()]
        if any(name != roadmap_path for name in files):
            commits.append((sha.strip(), message))
    return commits


def prunable_ids(repo: Path, roadmap_text: str, *, ref: str = "main",
                 roadmap_path: str = "roadmap.md") -> list[str]:
    """Open items whose id appears in a substantive commit on ``ref``."""
    roadmap = parse_roadmap(roadmap_text)
    messages = [m for _sha, m in substantive_commits(repo, ref=ref, roadmap_path=roadmap_path)]
    return [item.id for item in roadmap.open_items
            if any(_id_mention(item.id).search(message) for message in messages)]
