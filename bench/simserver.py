"""``python -m bench.simserver <simulate args>``: ``python -m payout_standins simulate`` under the benchmark's
own command line.

Why: the benchmark shares a 2-core machine with other people's test runs, and a cleanup there that
matches ``payout_standins simulate`` by name must not take the benchmark's simulator with it. Same
code, same arguments, same single line of output (the URL).
"""

from __future__ import annotations

import sys

from payout_standins.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["simulate", *sys.argv[1:]]))
