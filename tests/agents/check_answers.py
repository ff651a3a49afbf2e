"""The critic's check for end-to-end tests: every feature_*.py must hold ANSWER = 42."""

import re
import sys
from pathlib import Path

bad = [p.name for p in sorted(Path(".").glob("feature_*.py"))
       if re.search(r"ANSWER = (\d+)", p.read_text()).group(1) != "42"]  # type: ignore[union-attr]
if bad:
    print(f"wrong ANSWER in {', '.join(bad)}: expected 42")
    sys.exit(1)
print("all answers are 42")
