"""A deterministic worker for end-to-end tests, run by oxi's `exec` agent.

Behaviour per task id (from $OXI_TASK_ID), chosen to exercise every path of the loop:
  T1-1  writes feature_1.py correctly                      -> merges
  T1-2  exits 75 (EX_TEMPFAIL) every time                  -> retries, then FAILED
  T1-3  writes a wrong answer unless the prompt carries the critic's findings -> rejected once
  T1-4  exits 0 without changing anything                   -> FAILED "no changes"
  other writes notes/<id>.txt                               -> merges
Every prompt is appended to $PROMPT_LOG/<id>.log, so tests can read what the agent was told.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

task_id = os.environ["OXI_TASK_ID"]
prompt = Path(os.environ["OXI_PROMPT_FILE"]).read_text()
log_dir = os.environ.get("PROMPT_LOG")
if log_dir:
    with open(Path(log_dir) / f"{task_id}.log", "a") as handle:
        handle.write(prompt + "\n=====\n")
sleep = float(os.environ.get("AGENT_SLEEP", "0"))
if sleep:
    time.sleep(sleep)

if task_id == "T1-2":
    print("provider overloaded, try again later", file=sys.stderr)
    sys.exit(75)
if task_id == "T1-4":
    print("all done (but nothing was changed)")
    sys.exit(0)
if task_id == "T1-1":
    Path("feature_1.py").write_text("ANSWER = 42\n")
elif task_id == "T1-3":
    reviewed = "A reviewer rejected the previous attempt" in prompt
    Path("feature_3.py").write_text(f"ANSWER = {42 if reviewed else 41}\n")
else:
    target = Path(os.environ.get("AGENT_TARGET", f"notes/{task_id}.txt"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a") as handle:
        handle.write(f"{task_id} was here\n")
print(json.dumps({"type": "result", "cost_usd": 0.01, "input_tokens": 100,
                  "output_tokens": 20, "turns": 1}))
