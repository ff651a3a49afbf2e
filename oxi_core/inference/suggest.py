"""`oxi route suggest`: shadow runs (T2-35) turned into routing.yaml changes.

Every paired shadow run says whether the shadow agent would have done what the primary did
(same classification, same files) and what it would have cost. Grouped by task class (a tier,
or a tier and a word of the title), a class whose shadow agreed often enough over enough
pairs, for less money, can be promoted: its tasks go to the shadow agent first, with the
worker they used to run on as the fallback. The suggestion is printed with its evidence;
``--apply`` writes it into the repository's routing.yaml (ruamel.yaml round trip, so every
comment stays).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oxi_core.inference.routing import (
    DEFAULT_AGENT,
    DEFAULT_ROUTING_PATH,
    ROUTING_FILENAME,
    RoleNotConfiguredError,
    Routing,
    parse_routing,
)
from oxi_core.ledger import events as ev

if TYPE_CHECKING:
    from oxi_core.ledger import Ledger

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset({
    "the", "and", "for", "with", "from", "into", "add", "new", "use", "make", "when", "that",
    "this", "all", "via", "per", "its", "not", "one", "out", "off",
})


@attrs.frozen
class Pair:
    task_id: str
    tier: int
    title: str
    merged: bool
    primary_agent: str
    shadow_agent: str
    agreed: bool
    cost_delta_usd: float  # shadow minus primary


@attrs.frozen
class ClassEvidence:
    tier: int
    word: str | None  # None: the whole tier
    shadow_agent: str
    primary_agent: str
    pairs: int
    agreement: float
    cost_delta_usd: float  # mean per pair, shadow minus primary
    merge_rate: float  # of the class's distinct tasks
    tasks: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"tier {self.tier}" + (f", title word {self.word!r}" if self.word else "")

    def rule_name(self) -> str:
        return f"tier-{self.tier}-{self.word or 'all'}-to-{self.shadow_agent}"

    def why(self, today: date) -> str:
        return (f"shadow evidence ({today.isoformat()}): {self.pairs} pairs, agreement "
                f"{self.agreement:.0%}, cost delta ${self.cost_delta_usd:+.4f} per run, "
                f"merge rate {self.merge_rate:.0%}")

    def as_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "word": self.word, "shadow_agent": self.shadow_agent,
                "primary_agent": self.primary_agent, "pairs": self.pairs,
                "agreement": round(self.agreement, 4),
                "cost_delta_usd": round(self.cost_delta_usd, 6),
                "merge_rate": round(self.merge_rate, 4), "tasks": list(self.tasks)}


def read_pairs(ledger: Ledger) -> list[Pair]:
    """Every complete shadow pair of the ledger, with its task's tier, title and fate."""
    halves: dict[str, dict[str, Any]] = {}
    for event in ledger.events(types=[ev.AGENTIC_SHADOW_OBSERVED]):
        payload = event.payload
        halves.setdefault(payload["pair_id"], {"task": event.task_id, **payload})[
            payload["role"]] = payload
    pairs: list[Pair] = []
    tasks: dict[str, Any] = {}
    for half in halves.values():
        if "primary" not in half or "shadow" not in half or not half["task"]:
            continue
        task_id = half["task"]
        if task_id not in tasks:
            tasks[task_id] = ledger.task(task_id)
        task = tasks[task_id]
        if task is None:
            continue
        pairs.append(Pair(task_id, task.tier, task.title, str(task.status) == "merged",
                          half["primary"]["agent"], half["shadow"]["agent"],
                          bool(half["shape_match"]), float(half["cost_delta_usd"])))
    return pairs


def title_words(title: str) -> set[str]:
    return {w for w in _WORD.findall(title.lower()) if len(w) >= 3 and w not in STOPWORDS}


def class_evidence(pairs: Iterable[Pair]) -> list[ClassEvidence]:
    groups: dict[tuple[int, str | None, str, str], list[Pair]] = {}
    for pair in pairs:
        for word in (None, *sorted(title_words(pair.title))):
            key = (pair.tier, word, pair.shadow_agent, pair.primary_agent)
            groups.setdefault(key, []).append(pair)
    found = []
    for (tier, word, shadow, primary), members in groups.items():
        tasks = sorted({p.task_id for p in members})
        merged = {p.task_id for p in members if p.merged}
        found.append(ClassEvidence(
            tier, word, shadow, primary, len(members),
            sum(p.agreed for p in members) / len(members),
            sum(p.cost_delta_usd for p in members) / len(members),
            len(merged) / len(tasks), tuple(tasks)))
    return sorted(found, key=lambda c: (c.tier, c.word is not None, c.word or "", c.shadow_agent))


def suggestions(evidence: Iterable[ClassEvidence], routing: Routing, *,
                min_agreement: float, min_pairs: int) -> list[ClassEvidence]:
    """The classes worth promoting: enough pairs, agreement at the threshold, cheaper, and not
    routed to the shadow agent already. A tier that qualifies whole covers its words."""
    chosen: list[ClassEvidence] = []
    for item in evidence:
        if item.pairs < min_pairs or item.agreement < min_agreement or item.cost_delta_usd >= 0:
            continue
        if any(c.tier == item.tier and c.word is None and c.shadow_agent == item.shadow_agent
               for c in chosen):
            continue
        sample = {"tier": item.tier, "title": item.word or ""}
        try:
            current = routing.route_for("worker", sample).adapter_name
        except RoleNotConfiguredError:  # no worker rule matches: nothing routes it yet
            current = None
        if current == item.shadow_agent:
            continue  # promoted already
        chosen.append(item)
    return chosen


def rule_for(item: ClassEvidence, today: date) -> dict[str, Any]:
    match: dict[str, Any] = {"tier": item.tier}
    if item.word:
        match["title_words"] = [item.word]
    return {"name": item.rule_name(), "match": match, "adapter": item.shadow_agent,
            "fallback": [DEFAULT_AGENT], "why": item.why(today)}


def rule_yaml(rule: Mapping[str, Any]) -> str:
    """The rule as the lines to add under ``roles: worker:`` (flow style for the match)."""
    match = ", ".join(f"{k}: {v if not isinstance(v, list) else '[' + ', '.join(v) + ']'}"
                      for k, v in rule["match"].items())
    fallback = ", ".join(rule["fallback"])
    return (f"    - name: {rule['name']}\n"
            f"      match: {{{match}}}\n"
            f"      adapter: {rule['adapter']}\n"
            f"      fallback: [{fallback}]\n"
            f"      why: \"{rule['why']}\"\n")


def apply_rules(config_dir: Path, rules: list[dict[str, Any]]) -> Path:
    """Insert ``rules`` into the worker role of ``config_dir/routing.yaml`` (a copy of the
    defaults when there is none), before its first catch-all rule; comments are kept."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    path = config_dir / ROUTING_FILENAME
    if not path.exists():
        shutil.copyfile(DEFAULT_ROUTING_PATH, path)
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    yaml.preserve_quotes = True
    data = yaml.load(path.read_text(encoding="utf-8"))
    roles = data["roles"]
    if "worker" not in roles:
        defaults = yaml.load(DEFAULT_ROUTING_PATH.read_text(encoding="utf-8"))
        roles["worker"] = defaults["roles"]["worker"]
    worker = roles["worker"]
    position = next((i for i, rule in enumerate(worker) if "match" not in rule), len(worker))
    for offset, rule in enumerate(rules):
        node = CommentedMap()
        for key, value in rule.items():
            if key == "match":
                flow = CommentedMap(value)
                flow.fa.set_flow_style()
                for inner, inner_value in value.items():
                    if isinstance(inner_value, list):
                        seq = CommentedSeq(inner_value)
                        seq.fa.set_flow_style()
                        flow[inner] = seq
                node[key] = flow
            elif isinstance(value, list):
                seq = CommentedSeq(value)
                seq.fa.set_flow_style()
                node[key] = seq
            else:
                node[key] = value
        worker.insert(position + offset, node)
    import io

    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    parse_routing(text, path)  # never write a file routing would refuse
    path.write_text(text, encoding="utf-8")
    return path
