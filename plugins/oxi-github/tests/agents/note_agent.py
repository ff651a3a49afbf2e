"""A deterministic worker for the GitHub plugin's tests, run by oxi's `exec` agent: appends
"<task id> was here" to $AGENT_TARGET (default notes/<task id>.txt) and reports a cost.

It also writes to $AGENT_ENV_LOG (when set) the names of its environment variables whose value
holds $AGENT_SECRET_PROBE: the forge's token must never reach an agent.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

task_id = os.environ["OXI_TASK_ID"]
probe = os.environ.get("AGENT_SECRET_PROBE_FILE")
log = os.environ.get("AGENT_ENV_LOG")
if probe and log:
    secret = Path(probe).read_text().strip()
    leaked = sorted(name for name, value in os.environ.items() if secret in value)
    with open(Path(log) / f"{task_id}.json", "w") as handle:
        json.dump(leaked, handle)
time.sleep(float(os.environ.get("AGENT_SLEEP", "0")))
target = Path(os.environ.get("AGENT_TARGET", f"notes/{task_id}.txt"))
target.parent.mkdir(parents=True, exist_ok=True)
with open(target, "a") as handle:
    handle.write(f"{task_id} was here\n")
print(json.dumps({"type": "result", "cost_usd": 0.01, "input_tokens": 10, "output_tokens": 5,
                  "turns": 1}))
