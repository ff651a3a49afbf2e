"""Ingest: upsert one task per roadmap item, by T-id; close what left the roadmap.

Idempotent: ingesting the same roadmap twice writes nothing the second time. An item whose line
could not be parsed is not "removed" (its task keeps its status), and a roadmap that cannot be
read at all closes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core.engine.ingest_mark import INGEST_MARK_KEY, IngestMark, stored_mark
from oxi_core.ledger import Ledger
from oxi_core.ledger import events as ev
from oxi_core.tasks import OPEN_STATUSES, Task, TaskStatus

if TYPE_CHECKING:  # the parser is imported when a roadmap is parsed, not by every tick
    from oxi_core.roadmap import PruneMatch, Roadmap, RoadmapItem

# Statuses an item's removal from the roadmap closes as abandoned.
CLOSED_BY_REMOVAL = OPEN_STATUSES


@attrs.frozen
class BaseMerges:
    """Roadmap ids the base branch has merged (a substantive commit names each) that the
    ledger did not know: ingest records them as merged, so they are never dispatched."""

    ref: str  # e.g. "origin/main"
    matches: Mapping[str, PruneMatch] = attrs.field(factory=dict)

    def payload(self, task_id: str) -> dict[str, Any]:
        match = self.matches[task_id]
        return {"on": self.ref, "commit": match.commit, "subject": match.subject,
                "reason": f"{self.ref} has merged it already (a ledger that did not know)"}


@attrs.frozen
class IngestChange:
    kind: str  # new | updated | reopened | abandoned | done
    task_id: str
    fields: dict[str, Any] = attrs.field(factory=dict)
    previous_status: TaskStatus | None = None


def _fields_from_item(item: RoadmapItem, position: int, existing: Task | None) -> dict[str, Any]:
    files = tuple(sorted(set(item.files) | set(existing.files_touched if existing else ())))
    return {
        "tier": item.tier,
        "title": item.title,
        "subtitle": item.subtitle,
        "section": item.section,
        "position": position,
        "files_touched": files,
    }


def diff_roadmap(tasks: Sequence[Task], roadmap: Roadmap, *,
                 only: Collection[str] | None = None) -> list[IngestChange]:
    """What ingesting ``roadmap`` would change, given the current tasks. Pure.

    With ``only``, ``tasks`` are just those ids and nothing else is looked at: the incremental
    pass over tasks changed since an ingest of this same roadmap, after which every other task
    would diff to nothing."""
    by_id = {task.id: task for task in tasks}
    changes: list[IngestChange] = []
    seen: set[str] = set()
    if only is None:
        listed: Iterable[tuple[int, RoadmapItem]] = enumerate(roadmap.open_items)
    else:
        positions = roadmap.open_positions
        listed = sorted(positions[i] for i in only if i in positions)
    for position, item in listed:
        seen.add(item.id)
        existing = by_id.get(item.id)
        fields = _fields_from_item(item, position, existing)
        if existing is None:
            changes.append(IngestChange("new", item.id, fields))
            continue
        if existing.status is TaskStatus.ABANDONED:
            # Back on the roadmap after a removal: plan it again. A task abandoned because a
            # person closed its pull request stays abandoned while its item is unchanged.
            if not existing.in_roadmap:
                changes.append(IngestChange("reopened", item.id, fields, existing.status))
            continue
        if existing.status in (TaskStatus.MERGED, TaskStatus.DONE):
            continue
        changed = {k: v for k, v in fields.items() if getattr(existing, k) != v}
        if not existing.in_roadmap:
            changed["in_roadmap"] = True
        if changed:
            changes.append(IngestChange("updated", item.id, changed, existing.status))
    for task_id in sorted(roadmap.done_ids):
        if only is not None and task_id not in only:
            continue
        existing = by_id.get(task_id)
        seen.add(task_id)
        if existing is not None and existing.status in OPEN_STATUSES - {TaskStatus.DISPATCHED,
                                                                        TaskStatus.IN_REVIEW}:
            changes.append(IngestChange("done", task_id, {}, existing.status))
    # A broken item line whose id cannot even be read might be any task's: close nothing.
    if any(w.item_id is None for w in roadmap.errors):
        return changes
    for task in tasks:
        if task.id in seen or task.id in roadmap.unreadable_ids:
            continue
        if task.status in CLOSED_BY_REMOVAL:
            changes.append(IngestChange("abandoned", task.id, {"in_roadmap": False},
                                        task.status))
    return changes


@attrs.frozen
class IngestPass:
    changes: list[IngestChange]
    mark: IngestMark


def apply_ingest(ledger: Ledger, roadmap: Roadmap, *, digest: str = "",
                 since: int | None = None, merged: BaseMerges | None = None) -> IngestPass:
    """Diff and apply in one transaction, so two engines ingesting at once agree.

    With ``since`` (a revision at which the roadmap with this ``digest`` was ingested), only
    the tasks changed after it are read and diffed. The pass stores its mark in the same
    transaction unless the stored one says the same, so the next process starts where this
    one left off (after a dispatch or a merge moved the tasks, every later tick would
    otherwise read all that changed since the old mark); a pass that finds the stored mark
    current writes nothing."""
    with ledger.transaction():
        if since is None:
            # Every task the diff can change: the roadmap's ids and the open tasks (which its
            # removal closes). Merged, done and abandoned history off the roadmap diffs to
            # nothing, so it is not read.
            named = [item.id for item in roadmap.items]
            changes = diff_roadmap(ledger.tasks_named_or_in(named, CLOSED_BY_REMOVAL), roadmap)
        else:
            changed = ledger.tasks_changed_since(since)
            changes = diff_roadmap(changed, roadmap, only={task.id for task in changed})
        for change in changes:
            _apply(ledger, change, merged)
        mark = IngestMark(digest, *ledger.tasks_revision(), warnings=tuple(
            (warning.line, warning.message) for warning in roadmap.warnings))
        if digest and stored_mark(ledger) != mark:
            ledger.state_set(INGEST_MARK_KEY, mark.to_json())
        return IngestPass(changes, mark)


def _apply(ledger: Ledger, change: IngestChange, merged: BaseMerges | None = None) -> None:
    if change.kind == "new":
        task = Task(id=change.task_id, status=TaskStatus.PLANNED, **change.fields)
        ledger.insert_task(task, event_type=ev.TASK_INGESTED,
                           payload={"title": task.title, "tier": task.tier})
        if merged is not None and task.id in merged.matches:
            ledger.transition(task.id, TaskStatus.MERGED, event_type=ev.TASK_MERGED,
                              payload=merged.payload(task.id))
    elif change.kind == "updated":
        ledger.update_task(change.task_id, event_type=ev.TASK_UPDATED,
                           payload={"changed": sorted(change.fields)}, **change.fields)
    elif change.kind == "reopened":
        ledger.transition(change.task_id, TaskStatus.PLANNED, event_type=ev.TASK_REOPENED,
                          payload={"reason": "the item is back on the roadmap"},
                          in_roadmap=True, **change.fields)
    elif change.kind == "done":
        ledger.transition(change.task_id, TaskStatus.DONE, event_type=ev.TASK_DONE,
                          payload={"reason": "listed in the roadmap's Done section"})
    elif change.kind == "abandoned":
        ledger.transition(change.task_id, TaskStatus.ABANDONED, event_type=ev.TASK_ABANDONED,
                          payload={"reason": "the item was removed from the roadmap"},
                          in_roadmap=False)
