"""The dashboard tests' worker: says something with markup in it, then behaves as
tests/agents/scripted_agent.py does for its task (T1-1 merges, T1-2 retries, T1-3 is rejected
once, T1-4 changes nothing), except T1-8, which fails saying something with a script in it."""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

task_id = os.environ["OXI_TASK_ID"]
print(json.dumps({"type": "assistant",
                  "text": f"<script>window.__agent_ran = 1</script> working on {task_id} & co"}),
      flush=True)
if task_id == "T1-8":
    print("<script>window.__reason_ran = 1</script> could not build", file=sys.stderr)
    sys.exit(1)
runpy.run_path(str(Path(__file__).parents[1] / "agents" / "scripted_agent.py"),
               run_name="__main__")
