"""Critics composed: ``[roles] critic = ["tests", "review"]`` runs each, in order.

It approves only when every critic approves; any rejection rejects; otherwise any abstention
abstains. Every critic runs even after a rejection, so the retry's prompt carries the findings
of each, prefixed with the critic's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from oxi_core.models import PullRequestSubject, Verdict, VerdictKind


@attrs.frozen
class CompositeCritic:
    critics: Sequence[tuple[str, Any]]

    def judge(self, subject: PullRequestSubject) -> Verdict:
        verdicts = [(name, critic.judge(subject)) for name, critic in self.critics]
        kinds = {verdict.kind for _name, verdict in verdicts}
        kind = (VerdictKind.REJECT if VerdictKind.REJECT in kinds else
                VerdictKind.ABSTAIN if VerdictKind.ABSTAIN in kinds else VerdictKind.APPROVE)
        reasons = tuple(f"[{name}] {reason}" for name, verdict in verdicts
                        for reason in verdict.reasons)
        tails = "\n".join(f"[{name}] {v.output_tail}" for name, v in verdicts if v.output_tail)
        sources = sorted({v.cost_source for _n, v in verdicts} - {"none"})
        return Verdict(kind, reasons, tails, sum(v.cost_usd for _n, v in verdicts),
                       "+".join(sources) or "none")
