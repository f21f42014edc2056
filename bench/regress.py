"""``python -m bench.regress no-first run ...``: ``payout-backfill`` with a regression injected.

Why a wrapper: the shard runs are forks of a forkserver that imports its modules before the first
fork, so a patch applied in the CLI process would never reach them. This adds the patch module to
the forkserver's preload list (after the project's own warm-up), then runs the real CLI.
The ``serial`` regression needs no patch: it is ``payout-backfill run --parallel 1``.
"""

from __future__ import annotations

import sys

from payout_assets.cli import launcher, main

PATCHES = {"no-first": "bench.nofirst"}


def run(argv: list[str]) -> int:
    if not argv or argv[0] not in PATCHES:
        print(f"usage: python -m bench.regress {{{','.join(PATCHES)}}} <payout-backfill args>")
        return 2
    context = launcher._forkserver()  # creates the context with the project's preload
    context.set_forkserver_preload(["payout_assets.cli.forkserver", PATCHES[argv[0]]])
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
