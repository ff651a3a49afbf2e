#!/usr/bin/env python3
"""A stand-in for the operator's X tool, run as a real executable by the tests.

It records how it was run (argv, environment, pid) as one JSON line in --record, then acts as
--mode says: print a fixture (as a file holds it), fail, print something that is not JSON, or
hang. Flags it does not know (oxi's --since and the handles) are left in its argv.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--mode", required=True,
                    choices=["print", "v2-search", "fail", "garbage", "hang", "silent"])
parser.add_argument("--record", required=True)
parser.add_argument("--fixture")
known, rest = parser.parse_known_args()
with Path(known.record).open("a", encoding="utf-8") as record:
    record.write(json.dumps({"argv": sys.argv[1:], "rest": rest, "env": dict(os.environ),
                             "pid": os.getpid(), "cwd": os.getcwd()}) + "\n")

if known.mode == "print":
    sys.stdout.write(Path(known.fixture).read_text(encoding="utf-8"))
elif known.mode == "v2-search":
    # The official example exchange: print its response, as a client of the API would.
    exchange = json.loads(Path(known.fixture).read_text(encoding="utf-8"))
    json.dump(exchange["recent_search"]["response"], sys.stdout, indent=2)
elif known.mode == "fail":
    print("fetching 15 timelines", flush=True)
    print("error: 429 Too Many Requests (rate limit resets in 900 s)", file=sys.stderr)
    sys.exit(3)
elif known.mode == "garbage":
    print("<html><body>Something went wrong, but don't fret</body></html>")
elif known.mode == "hang":
    time.sleep(600)
sys.exit(0)
