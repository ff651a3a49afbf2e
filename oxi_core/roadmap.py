"""Parse and rewrite roadmap.md: the queue of items oxi works from.

Two shapes are read (docs/roadmap-format.md is the operator's reference):

- canonical: ``**T1-B5 · title**`` (optionally as a list item), then an italic subtitle line,
  then body paragraphs up to the next item or heading;
- flattened (markdown emphasis lost, as in the original seed): ``T0-104 · title`` then a plain
  description line, which becomes the subtitle; or one line carrying status text after the
  title (``T2-12 · title PR #95 ... — awaiting CI.``). Lines ending in ``¶`` are headings.

A heading starting with "Done" lists shipped ids. A line that looks like an item but cannot be
parsed is a RoadmapWarning naming its line and the id it mentions (``Roadmap.unreadable_ids``),
never a crash and never silently dropped, so the engine does not mistake a typo for a removal.

Everything here is pure text work except pruning, which reads git history through argv-list
subprocesses. Nothing touches the ledger.
"""

from __future__ import annotations

import enum
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path, PurePosixPath

import attrs

from oxi_core.errors import GitError, RoadmapError
from oxi_core.roadmap_text import read_roadmap_text as read_roadmap_text

ROADMAP_FILE = "roadmap.md"
ID_PATTERN = r"T(?P<tier>\d+)-(?P<n>[A-Z]*\d+)"

_ID = re.compile(rf"{ID_PATTERN}\Z")
# An id inside free text, not glued to letters or digits: T1-1 never matches T1-10 or T1-1a.
_ID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])T\d+-[A-Z]*\d+(?![A-Za-z0-9])")
# Lines end at \r\n, \n or a lone \r; nothing else (str.splitlines also splits on \x0c, \u2028...,
# which would make line numbers disagree with editors and break byte-exact rewriting).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_LIST_MARKER = re.compile(r" {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*)|[ \t]*)\Z")
_ATX_CLOSE = re.compile(r"(?:\A|[ \t]+)#+[ \t]*\Z")
_PILCROW_LEVEL = 2  # "Title¶" headings carry no level; all of them rank equally
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_BOLD = re.compile(r"(\*\*|__)(?P<inner>.+?)\1(?P<rest>.*)\Z")
_HEAD = re.compile(r"(?P<token>T[^\s·:]*)(?P<after>.*)\Z")
_ID_ATTEMPT = re.compile(r"T\d")
# What a writer may have typed instead of the middle dot: "T1-2 - title", "T1-2: title", "T1-2".
_PLACEHOLDER = re.compile(r"[{<\[]")
_LOOKALIKE = re.compile(r"\s*(?:[-–—:|•∙⋅]\s|\Z)")
_ITALIC = re.compile(r"(?:_(?!_)(?P<u>.*?\S)_|\*(?![*\s])(?P<s>.*?[^*\s])\*)\Z")
_TIER_HEADING = re.compile(r"tier\s+(\d+)\b", re.IGNORECASE)
_DONE_HEADING = re.compile(r"(?:done|shipped)\b", re.IGNORECASE)
_DONE_RANGE = re.compile(r"T\d+-[A-Z]*\d+\s*(?:\.\.\.?|…|–|—)\s*T\d+-[A-Z]*\d+")
# Where a flattened item's title ends and its status text begins.
_STATUS_PR = re.compile(r"\s+PR #\d")
_STATUS_DASH = " — "

# -- file scope ----------------------------------------------------------------------------

# Names without a folder count as files only in backticks and with one of these extensions
# (`roadmap.md` yes, `task.tier` no).
FILE_EXTENSIONS = frozenset({
    "py", "pyi", "md", "rst", "txt", "toml", "yaml", "yml", "json", "jsonl", "ini", "cfg",
    "sh", "js", "ts", "tsx", "go", "rs", "rb", "java", "c", "h", "cpp", "sql", "html", "css",
    "lock", "plist", "service", "csv",
})
_WORD = re.compile(r"[^\s`'\"()\[\]{}<>,;|]+")
_BACKTICKED = re.compile(r"`([^`\s]+)`")
_PATH = re.compile(r"(?:[\w.@+-]+/)*[\w.@+-]*[\w-]\.(?P<ext>[A-Za-z][A-Za-z0-9]{0,7})\Z",
                   re.ASCII)


def _as_path(token: str, *, backticked: bool) -> str | None:
    """``token`` as a repository-relative path, or None when it does not look like one."""
    token = token.strip("*").rstrip(".,:;!?").removeprefix("./")
    if (not token or token.startswith(("/", "~", "-")) or "://" in token
            or ".." in token.split("/")):
        return None  # absolute, home-relative, URLs and escapes are never repository paths
    match = _PATH.match(token)
    if match is None:
        return None
    if "/" not in token and not (backticked and match["ext"].lower() in FILE_EXTENSIONS):
        return None
    return token


def extract_files(text: str) -> tuple[str, ...]:
    """Repository paths an item names (its expected file scope), sorted and unique.

    Words with a folder and an extension count (``oxi_core/engine/reaper.py``); a bare name
    counts only in backticks with a known extension (`` `roadmap.md` ``).
    """
    # Every path has an extension, so a word without a dot is skipped before any regex.
    found = {path for word in _WORD.findall(text)
             if "." in word and (path := _as_path(word, backticked=False))}
    found |= {path for token in _BACKTICKED.findall(text)
              if (path := _as_path(token, backticked=True))}
    return tuple(sorted(found))


# -- value types ---------------------------------------------------------------------------


class Severity(enum.StrEnum):
    ERROR = "error"  # the roadmap says something oxi cannot follow: `oxi roadmap lint` fails
    WARNING = "warning"  # readable, but probably not what the writer meant


@attrs.frozen
class RoadmapWarning:
    line: int  # 1-based
    message: str
    item_id: str | None = None  # the id the line names, when it names one
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"line {self.line}: {self.severity}: {self.message}"


@attrs.frozen
class RoadmapItem:
    id: str
    tier: int
    title: str
    subtitle: str = ""
    body: str = ""
    section: str = ""  # the nearest heading above the item
    line: int = 0  # 1-based line of the item's own line
    end_line: int = 0  # 1-based, inclusive: the item's last non-blank line
    done: bool = False
    files: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id, "tier": self.tier, "title": self.title, "subtitle": self.subtitle,
            "section": self.section, "line": self.line, "end_line": self.end_line,
            "done": self.done, "files": list(self.files),
        }


def priority_key(item: RoadmapItem) -> tuple[int, int]:
    """Dispatch order: lower tier first, then roadmap (file) order."""
    return (item.tier, item.line)


@attrs.frozen
class Roadmap:
    items: tuple[RoadmapItem, ...] = ()  # file order; Done-list ids are items with done=True
    warnings: tuple[RoadmapWarning, ...] = ()  # line order

    # Derived once per parsed roadmap: the engine keeps one Roadmap across idle ticks.
    @cached_property
    def open_items(self) -> tuple[RoadmapItem, ...]:
        return tuple(item for item in self.items if not item.done)

    @cached_property
    def open_positions(self) -> dict[str, tuple[int, RoadmapItem]]:
        """Each open item by id, with its position among the open items."""
        return {item.id: (position, item) for position, item in enumerate(self.open_items)}

    @cached_property
    def done_ids(self) -> frozenset[str]:
        return frozenset(item.id for item in self.items if item.done)

    @cached_property
    def unreadable_ids(self) -> frozenset[str]:
        """Ids named on lines with a problem: a task with such an id keeps its status, because
        its item may still be there behind a typo."""
        return frozenset(w.item_id for w in self.warnings if w.item_id is not None)

    @cached_property
    def errors(self) -> tuple[RoadmapWarning, ...]:
        return tuple(w for w in self.warnings if w.severity is Severity.ERROR)

    @cached_property
    def _by_id(self) -> dict[str, RoadmapItem]:
        found: dict[str, RoadmapItem] = {}
        for item in self.items:
            found.setdefault(item.id, item)  # the first, as a scan would find it
        return found

    def by_priority(self) -> tuple[RoadmapItem, ...]:
        """Open items in dispatch order (``priority_key``)."""
        return tuple(sorted(self.open_items, key=priority_key))

    def get(self, item_id: str) -> RoadmapItem | None:
        return self._by_id.get(item_id)


# -- reading lines -------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    """Lines with their terminators: ``"".join(_split_lines(text)) == text``."""
    return _LINE.findall(text)


def _content(line: str) -> str:
    return line.rstrip("\r\n")


def _blank(line: str) -> bool:
    return not line.strip()


@attrs.frozen
class _Head:
    """A readable item line."""

    item_id: str
    tier: int
    title: str
    inline: str  # text after the title on the same line: status, or an inline subtitle
    canonical: bool  # bold (the flattened form lost its emphasis)


@attrs.frozen
class _Broken:
    """A line that looks like an item but cannot be read."""

    message: str
    item_id: str | None


def _read_head(content: str) -> _Head | _Broken | None:
    if "T" not in content:
        return None  # every item line, broken or not, has an id-like token starting with T
    marker = _LIST_MARKER.match(content)
    indent = len(content) - len(content.lstrip(" "))
    if marker is None and indent > 3:
        return None  # indented code, or a nested list inside a body
    rest = content[marker.end():] if marker else content[indent:]
    bold = _BOLD.match(rest)
    if bold is None:
        return _classify(rest.strip(), "", canonical=False)
    inner, trailing = bold["inner"].strip(), bold["rest"].strip()
    if "·" not in inner and trailing.startswith("·"):
        inner, trailing = f"{inner} {trailing}", ""  # **T1-2** · title
    return _classify(inner, trailing, canonical=True)


def _classify(text: str, trailing: str, *, canonical: bool) -> _Head | _Broken | None:
    match = _HEAD.match(text)
    if match is None:
        return None
    token, after = match["token"], match["after"]
    ident = _ID.match(token)
    if not after.lstrip().startswith("·"):
        if ident is None and canonical and _ID_ATTEMPT.match(token):
            # A bold line starting with T<digit> is an attempt at an item, whatever follows:
            # "**T1-3;rm -rf x · evil**" is reported, never silently skipped.
            mentioned = _ID_IN_TEXT.findall(text)
            return _Broken(f"bad id {token!r}: ids are T{{tier}}-{{N}} with a numeric tier, "
                           "for example T1-23 or T1-B5", mentioned[0] if mentioned else None)
        if ident is None or not (canonical or _LOOKALIKE.match(after)):
            return None  # prose that merely starts with an id ("T2-37 lands first")
        return _Broken(f"{token} looks like an item but has no ' · ' between the id and the "
                       f"title; write **{token} · title**", token)
    if ident is None:
        if not any(char.isdigit() or char == "-" for char in token) or _PLACEHOLDER.search(token):
            return None  # "Tier · ..." and templates like T{tier}-{N} are not attempts at an id
        mentioned = _ID_IN_TEXT.findall(text)
        return _Broken(f"bad id {token!r}: ids are T{{tier}}-{{N}} with a numeric tier, "
                       "for example T1-23 or T1-B5", mentioned[0] if mentioned else None)
    title = after.lstrip()[1:].strip()
    if not title:
        return _Broken(f"{token} has no title; write **{token} · title**", token)
    return _Head(token, int(ident["tier"]), title, _unitalic(trailing), canonical)


def _unitalic(text: str) -> str:
    match = _ITALIC.match(text)
    return (match["u"] or match["s"]).strip() if match else text


def _heading(content: str) -> tuple[int, str] | None:
    """(level, text) of a markdown ``#`` heading or a ``¶`` line, else None."""
    atx = _ATX.match(content)
    if atx is not None:
        text = _ATX_CLOSE.sub("", atx[2] or "")
        return len(atx[1]), text.strip().removesuffix("¶").strip()
    stripped = content.strip()
    if stripped.endswith("¶"):
        return _PILCROW_LEVEL, stripped[:-1].strip()
    return None


# -- the scan ------------------------------------------------------------------------------


@attrs.frozen
class _Block:
    """The lines of one item-looking line: [start, stop) with stop after its last non-blank
    line. Broken lines get a block too, so removal and body boundaries treat them alike."""

    item_id: str | None
    start: int  # 0-based
    stop: int


@attrs.frozen
class _Context:
    section: str
    done: bool
    tier_heading: tuple[int, str] | None  # (tier, heading text) of the enclosing Tier heading


@attrs.define
class _Scan:
    lines: list[str]
    blocks: list[_Block] = attrs.field(factory=list)
    items: list[RoadmapItem] = attrs.field(factory=list)
    warnings: list[RoadmapWarning] = attrs.field(factory=list)
    done_lines: dict[str, tuple[int, str]] = attrs.field(factory=dict)  # id -> (index, section)
    first_seen: dict[str, int] = attrs.field(factory=dict)  # id -> line of the item kept

    def warn(self, index: int, message: str, item_id: str | None,
             severity: Severity = Severity.ERROR) -> None:
        self.warnings.append(RoadmapWarning(index + 1, message, item_id, severity))


@attrs.define
class _Pending:
    start: int
    head: _Head | _Broken
    context: _Context


def _scan(lines: list[str]) -> _Scan:
    scan = _Scan(lines)
    headings: list[tuple[int, str]] = []
    context = _Context("", False, None)
    pending: _Pending | None = None
    fence: str | None = None
    in_comment = False

    def close(stop: int) -> None:
        nonlocal pending
        if pending is not None:
            _close(scan, pending, stop)
            pending = None

    for index, line in enumerate(lines):
        content = _content(line).removeprefix("\ufeff" if index == 0 else "")
        if fence is not None:  # code in a fence is never an item or a heading
            closing = _FENCE.match(content)
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= len(fence) \
                    and content.strip() == closing[1]:
                fence = None
            continue
        if in_comment:
            in_comment = "-->" not in content
            continue
        heading = _heading(content)
        if heading is not None:
            close(index)
            while headings and headings[-1][0] >= heading[0]:
                headings.pop()
            headings.append(heading)
            context = _context(headings)
            _check_heading(scan, index, heading[1])
        elif context.done and _done_list(scan, index, content, context.section):
            close(index)
        elif (head := _read_head(content)) is not None:
            close(index)
            pending = _Pending(index, head, context)
        else:
            opening = _FENCE.match(content)
            fence = opening[1] if opening else None
        if fence is None:
            start = content.rfind("<!--")
            in_comment = start >= 0 and "-->" not in content[start + 4:]
    close(len(lines))
    return scan


def _context(headings: list[tuple[int, str]]) -> _Context:
    tier = None
    for _level, text in reversed(headings):
        match = _TIER_HEADING.match(text)
        if match:
            tier = (int(match[1]), text)
            break
    done = any(_DONE_HEADING.match(text) for _level, text in headings)
    return _Context(headings[-1][1], done, tier)


def _check_heading(scan: _Scan, index: int, text: str) -> None:
    head = _classify(text, "", canonical=False)
    if head is not None:
        scan.warn(index, f"heading {text!r} looks like an item; items are bold lines "
                         "(**T1-2 · title**), not headings", head.item_id)


def _done_list(scan: _Scan, index: int, content: str, section: str) -> bool:
    """Record a Done-section line that lists ids (``- T0-1, T0-2``); False for other lines."""
    if "·" in content:
        return False  # a full item: read as one, marked done
    ids = _ID_IN_TEXT.findall(content)
    first = content.strip().split(maxsplit=1)[0].rstrip(",;.") if content.strip() else ""
    if not ids or not (_LIST_MARKER.match(content) or _ID.match(first)):
        return False
    if _DONE_RANGE.search(content):
        scan.warn(index, "ranges of ids are not expanded; list every shipped id", None)
    for item_id in ids:
        if item_id in scan.done_lines:
            scan.warn(index, f"{item_id} is listed as done twice (first at line "
                             f"{scan.done_lines[item_id][0] + 1})", item_id,
                      Severity.WARNING)
        else:
            scan.done_lines[item_id] = (index, section)
    return True


def _close(scan: _Scan, pending: _Pending, stop: int) -> None:
    start, head = pending.start, pending.head
    while stop > start + 1 and _blank(scan.lines[stop - 1]):
        stop -= 1
    scan.blocks.append(_Block(head.item_id, start, stop))
    if isinstance(head, _Broken):
        scan.warn(start, head.message, head.item_id)
        return
    if head.item_id in scan.first_seen:
        scan.warn(start, f"duplicate id {head.item_id} (first at line "
                         f"{scan.first_seen[head.item_id]}); the first one is used — renumber "
                         "or delete this one", head.item_id)
        return
    scan.first_seen[head.item_id] = start + 1
    scan.items.append(_build(scan, pending, stop))


def _build(scan: _Scan, pending: _Pending, stop: int) -> RoadmapItem:
    start, head, context = pending.start, pending.head, pending.context
    assert isinstance(head, _Head)
    rest = [_content(line) for line in scan.lines[start + 1:stop]]
    title, inline = head.title, head.inline
    if not head.canonical:
        title, inline = _split_status(title, one_line=not any(map(str.strip, rest)))
    subtitle = ""
    while rest and _blank(rest[0]):
        rest.pop(0)
    italic = _ITALIC.match(rest[0].strip()) if rest else None
    if italic is not None or (rest and not head.canonical):
        subtitle = _unitalic(rest.pop(0).strip())  # flattened: the description line
    elif head.canonical and not inline:
        scan.warn(start, f"{head.item_id} has no italic subtitle on the line after its title",
                  head.item_id, Severity.WARNING)
    if not subtitle:
        subtitle, inline = inline, ""
    if inline:
        rest.insert(0, inline)
    while rest and _blank(rest[0]):
        rest.pop(0)
    body = "\n".join(rest)
    tier_heading = context.tier_heading
    if not context.done and tier_heading is not None and tier_heading[0] != head.tier:
        scan.warn(start, f"{head.item_id} is a tier {head.tier} id under the heading "
                         f"{tier_heading[1]!r}; the id decides its tier", head.item_id,
                  Severity.WARNING)
    return RoadmapItem(
        id=head.item_id, tier=head.tier, title=title, subtitle=subtitle, body=body,
        section=context.section, line=start + 1, end_line=stop, done=context.done,
        files=extract_files("\n".join((title, subtitle, body))),
    )


def _split_status(title: str, *, one_line: bool) -> tuple[str, str]:
    """A flattened item's title ends before `` PR #n``; a one-line item's also before `` — ``
    (an item with a description may use a dash in its title: "Emit step — ledger events")."""
    status = _STATUS_PR.search(title)
    if status is not None:
        return title[:status.start()].rstrip(), title[status.start():].strip()
    dash = title.find(_STATUS_DASH)
    if one_line and dash > 0:
        return title[:dash].rstrip(), title[dash + len(_STATUS_DASH):].strip()
    return title, ""


def _finish(scan: _Scan) -> Roadmap:
    items: list[RoadmapItem] = []
    for item in scan.items:
        done_line = scan.done_lines.get(item.id)
        if done_line is not None and not item.done:
            scan.warn(item.line - 1, f"{item.id} is listed in the Done section (line "
                                     f"{done_line[0] + 1}) and as an open item; it is treated "
                                     "as done — delete one of them", item.id)
            item = attrs.evolve(item, done=True)
        items.append(item)
    listed = {item.id for item in items}
    for item_id, (index, section) in scan.done_lines.items():
        if item_id not in listed:
            tier = _ID.match(item_id)
            assert tier is not None
            items.append(RoadmapItem(id=item_id, tier=int(tier["tier"]), title="", done=True,
                                     section=section, line=index + 1, end_line=index + 1))
    items.sort(key=lambda item: item.line)
    warnings = sorted(scan.warnings, key=lambda warning: warning.line)
    return Roadmap(tuple(items), tuple(warnings))


# -- public entry points -------------------------------------------------------------------


def parse_roadmap(text: str) -> Roadmap:
    """Every item, Done id and problem in ``text``. Pure and deterministic."""
    return _finish(_scan(_split_lines(text)))


def load_roadmap(path: Path) -> Roadmap:
    """Parse the roadmap at ``path``; RoadmapError when it cannot be read at all."""
    return parse_roadmap(read_roadmap_text(path))


def remove_items(text: str, ids: Iterable[str]) -> str:
    """``text`` byte for byte, minus every item line naming one of ``ids`` (duplicates and
    broken lines too) with its subtitle, body and the blank lines after it.

    An item at the end of the file takes the blank lines before it instead, so no trailing
    blank lines are left behind. Line endings are kept as they are, and so is a missing final
    newline. Ids listed in a Done section stay there.
    """
    wanted = frozenset(ids)
    lines = _split_lines(text)
    drop = [False] * len(lines)
    for block in _scan(lines).blocks:
        if block.item_id not in wanted:
            continue
        after = block.stop
        while after < len(lines) and _blank(lines[after]):
            after += 1
        drop[block.start:after] = [True] * (after - block.start)
        if after == len(lines):
            before = block.start - 1
            while before >= 0 and (drop[before] or _blank(lines[before])):
                drop[before] = True
                before -= 1
    if not any(drop):
        return text
    kept = [line for line, dropped in zip(lines, drop, strict=True) if not dropped]
    if kept and lines and lines[-1] == _content(lines[-1]):
        kept[-1] = _content(kept[-1])  # the file ended without a newline: keep it that way
    return "".join(kept)


# -- pruning -------------------------------------------------------------------------------


@attrs.frozen
class PruneMatch:
    item_id: str
    commit: str  # full sha of the oldest substantive commit naming the id
    subject: str


_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?\Z")
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,64})")
# Variables that would point git somewhere other than ``repo`` (set inside git hooks).
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR",
                      "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                      "GIT_NAMESPACE")


def _git(repo: Path, args: Sequence[str], *, timeout_s: float = 120.0) -> str:
    argv = ["git", *args]
    env = {key: value for key, value in os.environ.items() if key not in _GIT_LOCATION_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    try:
        result = subprocess.run(argv, cwd=repo, env=env, capture_output=True,
                                stdin=subprocess.DEVNULL, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise GitError(argv, -1, f"timed out after {timeout_s:.0f}s") from error
    except OSError as error:  # no such folder, or no git on PATH
        raise GitError(argv, -1, str(error)) from error
    if result.returncode != 0:
        raise GitError(argv, result.returncode, result.stderr.decode("utf-8", "replace"))
    return result.stdout.decode("utf-8", "replace")


@attrs.frozen
class _Commit:
    sha: str
    parents: int
    message: str


def _history(repo: Path, ref: str) -> list[_Commit]:
    """Commits reachable from ``ref``, oldest first."""
    out = _git(repo, ["log", "--reverse", "--no-color", "--no-show-signature",
                      "--encoding=UTF-8", "--format=%x1e%H%x00%P%x00%B", ref, "--"])
    commits = []
    for record in out.split("\x1e"):
        parts = record.split("\x00", 2)
        if len(parts) == 3 and _SHA.match(parts[0]):
            commits.append(_Commit(parts[0], len(parts[1].split()), parts[2].strip()))
    return commits


def _touches_more_than(repo: Path, sha: str, roadmap_path: str) -> bool:
    out = _git(repo, ["diff-tree", "-r", "--root", "--no-commit-id", "--name-only",
                      "--no-renames", "-z", sha])
    return any(name and name != roadmap_path for name in out.split("\x00"))


def find_prunable(repo: Path, roadmap_text: str, ref: str = "main", *,
                  roadmap_path: str = ROADMAP_FILE) -> list[PruneMatch]:
    """Open items named by a substantive commit reachable from ``ref``, in roadmap order."""
    wanted = [item.id for item in parse_roadmap(roadmap_text).open_items]
    return find_merged(repo, wanted, ref, roadmap_path=roadmap_path)


def find_merged(repo: Path, wanted: Sequence[str], ref: str = "main", *,
                roadmap_path: str = ROADMAP_FILE) -> list[PruneMatch]:
    """The ids of ``wanted`` that a substantive commit reachable from ``ref`` names, in the
    order given, each with the oldest such commit.

    Substantive (docs/roadmap-format.md): not a merge (at most one parent), touching a file
    other than ``roadmap_path``, and neither a revert nor reverted. The id must appear in the
    message as a whole token.
    """
    if not wanted:
        return []
    roadmap_path = PurePosixPath(roadmap_path).as_posix().removeprefix("./")
    commits = _history(repo, ref)
    reverted = {match for c in commits for match in _REVERTS.findall(c.message)}
    found: dict[str, _Commit] = {}
    for commit in commits:
        if commit.parents > 1 or _REVERTS.search(commit.message) \
                or any(commit.sha.startswith(prefix) for prefix in reverted):
            continue
        named = set(_ID_IN_TEXT.findall(commit.message)) & (set(wanted) - set(found))
        if named and _touches_more_than(repo, commit.sha, roadmap_path):
            found.update(dict.fromkeys(named, commit))
    return [PruneMatch(item_id, found[item_id].sha, found[item_id].message.split("\n")[0])
            for item_id in wanted if item_id in found]


def prunable_ids(repo: Path, roadmap_text: str, ref: str = "main", *,
                 roadmap_path: str = ROADMAP_FILE) -> list[str]:
    """The ids of ``find_prunable``: what ``remove_items`` should take out."""
    return [match.item_id for match in find_prunable(repo, roadmap_text, ref,
                                                     roadmap_path=roadmap_path)]


# -- writing items -------------------------------------------------------------------------


@attrs.frozen
class NewItem:
    """An item to add: its id, one-line title and subtitle, and a body of plain lines."""

    id: str
    title: str
    subtitle: str
    body: str = ""


_EMPHASIS_EDGES = "*_ \t"


def _one_line(text: str) -> str:
    """``text`` on one line, without what would end the bold or italic around it early."""
    flat = " ".join(text.replace("¶", " ").split())
    return flat.replace("**", "").replace("__", "").strip(_EMPHASIS_EDGES)


def _body_line(line: str) -> str:
    """A body line that cannot start an item, a heading, a fence or a comment: such a line is
    quoted (``> ``), and ``<!--`` and ``¶`` never appear."""
    line = line.replace("¶", " ").replace("<!--", "< !--").rstrip()
    if _heading(line) or _read_head(line) or _FENCE.match(line):
        return "> " + line
    return line


def format_item(item: NewItem) -> str:
    """The canonical text of an item (docs/roadmap-format.md): the bold id and title, the
    italic subtitle, a blank line and the body. Ends with a newline."""
    if _ID.match(item.id) is None:
        raise RoadmapError(f"bad id {item.id!r}: ids are T{{tier}}-{{N}}, e.g. T1-A3")
    title, subtitle = _one_line(item.title), _one_line(item.subtitle)
    if not title or not subtitle:
        raise RoadmapError(f"{item.id} needs a title and a subtitle")
    lines = [f"**{item.id} · {title}**", f"_{subtitle}_"]
    body = [_body_line(line) for line in item.body.strip().splitlines()]
    if body:
        lines += ["", *body]
    return "\n".join(lines) + "\n"


def insert_item(text: str, item: NewItem) -> str:
    """``text`` with ``item`` added in its tier: after the last open item of that tier, else
    before the Done section, else at the end. The result is parsed back: it must hold the
    new item as written and every other item unchanged, or RoadmapError says why."""
    before = parse_roadmap(text)
    if before.get(item.id) is not None or item.id in before.unreadable_ids:
        raise RoadmapError(f"{item.id} is already in the roadmap", hint="pick the next free id")
    tier = int(_ID.match(item.id)["tier"])  # type: ignore[index]
    lines = _split_lines(text)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = format_item(item).replace("\n", newline)
    same_tier = [i for i in before.open_items if i.tier == tier]
    done_heading = _done_heading_line(lines)
    if same_tier:
        at = max(i.end_line for i in same_tier)
    elif done_heading is not None:
        at = done_heading
        while at > 0 and _blank(lines[at - 1]):
            at -= 1
    else:
        at = len(lines)
    head = "".join(lines[:at])
    tail = "".join(lines[at:]).lstrip("\r\n")
    if head and not head.endswith(("\n", "\r")):
        head += newline
    pieces = [head, newline if head else "", block]
    if tail:
        pieces += [newline, tail]
    result = "".join(pieces)
    _check_inserted(before, parse_roadmap(result), item)
    return result


def _done_heading_line(lines: list[str]) -> int | None:
    """The 0-based line of the first Done heading outside fences, if any."""
    fence: str | None = None
    for index, line in enumerate(lines):
        content = _content(line)
        opening = _FENCE.match(content)
        if fence is not None:
            if opening and content.strip() == opening[1] and opening[1][0] == fence[0]:
                fence = None
            continue
        if opening:
            fence = opening[1]
            continue
        heading = _heading(content)
        if heading is not None and _DONE_HEADING.match(heading[1]):
            return index
    return None


def _check_inserted(before: Roadmap, after: Roadmap, item: NewItem) -> None:
    added = after.get(item.id)
    if added is None or added.done or added.title != _one_line(item.title) \
            or added.subtitle != _one_line(item.subtitle):
        raise RoadmapError(f"{item.id} did not read back as written; roadmap.md is unchanged")

    def others(roadmap: Roadmap) -> list[tuple[str, str, str, bool]]:
        return [(i.id, i.title, i.subtitle, i.done) for i in roadmap.items if i.id != item.id]

    if others(before) != others(after) or len(after.errors) != len(before.errors):
        raise RoadmapError(f"adding {item.id} would change other items or add errors; "
                           "roadmap.md is unchanged")
