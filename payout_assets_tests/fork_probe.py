"""Run as ``python -m payout_assets_tests.fork_probe``: start one worker the way
``payout-backfill run`` does (a fork of the warmed forkserver) and print, as JSON, what the
worker inherited. A separate process, so the forkserver exits with it."""

from __future__ import annotations

import gc
import json
import sys
from multiprocessing.queues import SimpleQueue

from payout_assets.cli import launcher


def _report(queue: SimpleQueue) -> None:
    queue.put({"frozen_objects": gc.get_freeze_count(), "has_pandera": "pandera" in sys.modules})


def main() -> None:
    context = launcher._forkserver()
    queue = context.SimpleQueue()
    worker = context.Process(target=_report, args=(queue,))
    worker.start()
    print(json.dumps(queue.get()))
    worker.join(timeout=60)


if __name__ == "__main__":
    main()
