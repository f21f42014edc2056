"""Imported only by the forkserver process (its preload): load everything every run needs.

The embedded ClickHouse engine (chdb) is deliberately *not* loaded here: it starts threads, and
a process that forks while other threads hold locks hands its children those locks forever.
"""

from payout_assets.cli.launcher import warm_up

warm_up()
