"""run.py - runs every end-to-end test (tests/e2e/*.py) against the binaries
that `make` built; prints "[       OK ]"/"[  FAILED  ]" per test and the closing
"e2e: N passed, N failed" line.  Arguments: test names to run only those."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import kv_compare  # noqa: E402,F401
import clients  # noqa: E402,F401
import bad_input  # noqa: E402,F401
import durability  # noqa: E402,F401
import lease  # noqa: E402,F401
import watch  # noqa: E402,F401
import maintenance  # noqa: E402,F401
import lock  # noqa: E402,F401
import ctl_golden  # noqa: E402,F401
import ctl_snapshot  # noqa: E402,F401
import ctl_more  # noqa: E402,F401
import ctl_complete  # noqa: E402,F401

if __name__ == "__main__":
    res = os.path.join(harness.ROOT, "build", "e2e-result.txt")
    os.makedirs(os.path.dirname(res), exist_ok=True)
    sys.exit(0 if harness.run_all(res) else 1)
