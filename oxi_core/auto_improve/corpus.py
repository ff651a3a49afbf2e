"""What the repository is about, as documents ranking compares candidates with: the roadmap's
items, CHANGELOG.md's sections, and the pull requests merged in the last ``history_days``
(from the forge's optional ``merged_prs(since)``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from oxi_core.roadmap import Roadmap

CHANGELOG_FILE = "CHANGELOG.md"
_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)


@attrs.frozen
class CorpusDoc:
    kind: str  # "roadmap", "changelog", "pr"
    ref: str  # an item id, a changelog heading, a PR number
    text: str


def roadmap_docs(roadmap: Roadmap) -> list[CorpusDoc]:
    return [CorpusDoc("roadmap", item.id, "\n".join(p for p in (item.title, item.subtitle,
                                                                 item.body) if p))
            for item in roadmap.items if item.title]


def changelog_docs(repo_root: Path) -> list[CorpusDoc]:
    path = repo_root / CHANGELOG_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []  # no changelog: the roadmap and the pull requests still describe the project
    starts = [m.start() for m in _HEADING.finditer(text)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    docs = []
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        section = text[start:end].strip()
        if section:
            docs.append(CorpusDoc("changelog", section.splitlines()[0][:80], section))
    return docs


def pr_docs(forge: Any, now: datetime, history_days: float) -> list[CorpusDoc]:
    merged_prs = getattr(forge, "merged_prs", None)
    if not callable(merged_prs):
        return []
    prs: Sequence[Any] = merged_prs(now - timedelta(days=history_days))
    return [CorpusDoc("pr", f"#{pr.number}", f"{pr.title}\n{pr.body}".strip()) for pr in prs]


def build_corpus(roadmap: Roadmap, repo_root: Path, forge: Any, now: datetime,
                 history_days: float) -> list[CorpusDoc]:
    return [*roadmap_docs(roadmap), *changelog_docs(repo_root),
            *pr_docs(forge, now, history_days)]
