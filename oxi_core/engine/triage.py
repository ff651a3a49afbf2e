"""Heartbeat triage (T2-38): before a stuck task goes back to planned, the routed
``heartbeat-triage`` model says in a few sentences why it most likely got stuck.

Behind ``[engine] triage = true`` (off by default: the reaper then writes exactly what it
wrote before). One :class:`HeartbeatTriage` serves one tick: the first failure to get an
answer (gateway down, budget spent, nothing configured) records ``triage_disabled`` and the
rest of the tick reaps without asking, as the reaper always did.

What the model reads is what oxi kept of the task: its last events in the ledger (with the
agent's final text, the hook and error output they carry), its last error, and the tail of the
agent's transcript for the attempt (what it said and did last, `.oxi/transcripts/`). A worker
whose supervisor died left no stderr anywhere else. The engine runs the reap phase, and so the
model's call, off its event loop: the running agents' streams are read meanwhile.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from oxi_core.inference.prompts import fence, fence_rule, new_nonce
from oxi_core.ledger import events as ev
from oxi_core.tasks import Task

if TYPE_CHECKING:
    from oxi_core.config import OxiConfig
    from oxi_core.ledger import Ledger
    from oxi_core.policy import RepoPaths

LAST_EVENTS = 20
TRANSCRIPT_LINES = 30  # the agent's last canonical events, one line each
MAX_EVIDENCE_CHARS = 12_000
MAX_SUMMARY_CHARS = 1_000
SYSTEM = ("You triage a task that an unattended coding-agent engine found stuck: its worker "
          "stopped reporting progress and is being returned to the queue. {rule} In at most "
          "three sentences, say why the task most likely got stuck and what an operator "
          "should check. Plain text, no preamble.")


def triage_messages(task: Task, ledger: Ledger, liveness: str = "",
                    paths: RepoPaths | None = None) -> list[dict[str, str]]:
    """``paths``: the repository's, to read the attempt's transcript tail from."""
    from oxi_core.engine.transcripts import describe, transcript_path, transcript_tail

    events = list(reversed(ledger.events(task_id=task.id, newest_first=True,
                                         limit=LAST_EVENTS)))
    lines = [json.dumps({"ts": e.ts, "type": e.type, "payload": e.payload}, sort_keys=True,
                        default=str)[:1500] for e in events]
    tail = (transcript_tail(transcript_path(paths, task.id, task.attempts), TRANSCRIPT_LINES)
            if paths is not None else [])
    said = [describe(record, width=400) for record in tail] or ["(no transcript)"]
    evidence = "\n".join([
        f"task {task.id} (tier {task.tier}): {task.title}",
        f"status {task.status}, attempt {task.attempts}, agent {task.agent}, model {task.model}",
        f"last progress at {task.last_progress_at}, last event kind {task.last_event}",
        f"worker pid {task.worker_pid} on {task.worker_host}, supervisor pid "
        f"{task.supervisor_pid}{', found ' + liveness if liveness else ''}",
        f"last error: {task.last_error or '(none)'}",
        "last events, oldest first:", *lines,
        f"the agent's transcript of attempt {task.attempts}, last {len(tail)} events:", *said])
    nonce = new_nonce()
    return [{"role": "system",
             "content": SYSTEM.format(rule=fence_rule("EVIDENCE", nonce, "The task's record"))},
            {"role": "user",
             "content": fence("EVIDENCE", evidence, nonce, max_chars=MAX_EVIDENCE_CHARS)}]


class HeartbeatTriage:
    """The reaper's ``triage`` callable for one tick."""

    def __init__(self, config: OxiConfig, ledger: Ledger) -> None:
        self.config = config
        self.ledger = ledger
        self.disabled: str | None = None

    def __call__(self, task: Task) -> str | None:
        from oxi_core.inference.calls import complete_for_role_sync
        from oxi_core.inference.errors import InferenceError

        if self.disabled is not None:
            return None
        try:
            result = complete_for_role_sync(
                self.config, self.ledger, "heartbeat-triage",
                triage_messages(task, self.ledger, paths=self.config.paths), task=task,
                task_id=task.id,
                max_tokens=300)
        except InferenceError as error:
            self.disabled = error.message
            self.ledger.append(ev.TRIAGE_DISABLED, task_id=task.id, payload={
                "reason": "no triage this tick: the heartbeat-triage model did not answer",
                **error.as_payload()})
            return None
        summary = " ".join(result.text.split())
        return summary[:MAX_SUMMARY_CHARS] or None
