"""A deterministic worker for end-to-end tests, run by oxi's `exec` agent.

Behaviour per task id (from $OXI_TASK_ID), chosen to exercise every path of the loop:
  T1-1  writes feature_1.py correctly                      -> merges
  T1-2  exits 75 (EX_TEMPFAIL) every time                  -> retries, then FAILED
  T1-3  writes a wrong answer unless the prompt carries the critic's findings -> rejected once
  T1-4  exits 0 without changing anything                   -> FAILED "no changes"
  other writes notes/<id>.txt                               -> merges
Every prompt is appended to $PROMPT_LOG/<id>.log, so tests can read what the agent was told.

Switches for the unattended tests (all optional; without them the behaviour above is unchanged):
  AGENT_SLEEP=S         sleep S seconds before doing the work
  AGENT_SLEEPS=ID=S,..  per-task sleeps, overriding AGENT_SLEEP for the tasks named
  AGENT_HOLD=ID=PATH    task ID waits (up to 10 minutes) until PATH exists before its work:
                        the test decides when it ends, whatever the machine's load
  AGENT_TARGET=PATH     the file "other" tasks append their line to (default notes/<id>.txt)
  AGENT_COST=USD        the cost_usd the result line reports (default 0.01)
  AGENT_WRITE_FIRST=1   write the work (and say so on stdout) before sleeping, not after
  AGENT_IGNORE_TERM=1   ignore SIGTERM (a worker that does not die with its supervisor)
  AGENT_CHILD=1         start a child in the same process group that sleeps as long, and
                        write its pid to $AGENT_PID_DIR/<id>.child (an orphan to be reaped)
  AGENT_REPORT_FIRST=1  print the result line (with its cost) before failing (T1-2)
  AGENT_REFUSED_WHILE=PATH  while PATH exists, exit 77 (EX_NOPERM: the credentials were
                        refused) before doing anything; removing it is the operator's fix
The per-task dollar cap oxi passes ($OXI_MAX_COST_USD) is appended to $PROMPT_LOG/<id>.cap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

task_id = os.environ["OXI_TASK_ID"]
refused_while = os.environ.get("AGENT_REFUSED_WHILE")
if refused_while and Path(refused_while).exists():
    print("401 Unauthorized: invalid api key", file=sys.stderr)
    sys.exit(77)
prompt = Path(os.environ["OXI_PROMPT_FILE"]).read_text()
log_dir = os.environ.get("PROMPT_LOG")
if log_dir:
    with open(Path(log_dir) / f"{task_id}.log", "a") as handle:
        handle.write(prompt + "\n=====\n")
    with open(Path(log_dir) / f"{task_id}.cap", "a") as handle:
        handle.write(os.environ.get("OXI_MAX_COST_USD", "unset") + "\n")
sleep = float(os.environ.get("AGENT_SLEEP", "0"))
for pair in filter(None, os.environ.get("AGENT_SLEEPS", "").split(",")):
    named, _, seconds = pair.partition("=")
    if named == task_id:
        sleep = float(seconds)
held_named, _, hold_until = os.environ.get("AGENT_HOLD", "").partition("=")
write_first = os.environ.get("AGENT_WRITE_FIRST") == "1"
if os.environ.get("AGENT_IGNORE_TERM") == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ.get("AGENT_CHILD") == "1" and sleep:
    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({sleep})"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    pid_dir = os.environ.get("AGENT_PID_DIR")
    if pid_dir:
        (Path(pid_dir) / f"{task_id}.child").write_text(str(child.pid))


def work() -> None:
    if task_id == "T1-1":
        Path("feature_1.py").write_text("ANSWER = 42\n")
    elif task_id == "T1-3":
        reviewed = "A reviewer rejected the previous attempt" in prompt
        Path("feature_3.py").write_text(f"ANSWER = {42 if reviewed else 41}\n")
    elif task_id not in ("T1-2", "T1-4"):
        target = Path(os.environ.get("AGENT_TARGET", f"notes/{task_id}.txt"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as handle:
            handle.write(f"{task_id} was here\n")


if write_first:
    work()
    print(f"{task_id}: wrote the work, now thinking for {sleep}s", flush=True)
if sleep:
    time.sleep(sleep)
if held_named == task_id:
    held_until = time.monotonic() + 600
    while not Path(hold_until).exists() and time.monotonic() < held_until:
        time.sleep(0.05)

cost = float(os.environ.get("AGENT_COST", "0.01"))
result = {"type": "result", "cost_usd": cost, "input_tokens": 100, "output_tokens": 20,
          "turns": 1, "session_id": os.environ.get("AGENT_SESSION")}
if task_id == "T1-2":
    if os.environ.get("AGENT_REPORT_FIRST") == "1":
        print(json.dumps(result), flush=True)
    print("provider overloaded, try again later", file=sys.stderr)
    sys.exit(75)
if task_id == "T1-4":
    print("all done (but nothing was changed)")
    sys.exit(0)
if not write_first:
    work()
print(json.dumps(result))
