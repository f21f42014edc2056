"""``python -m bench.profile_summary profile-main.txt``: where the backfill's runs spend wall time.

Reads the collapsed stacks that ``bench.run --py-spy ... --keep`` records (``py-spy record
--subprocesses --idle --format raw``) and sums, for the thread that executes the Dagster run in
each forked run process, the samples by the innermost ``payout_assets`` frame and the leaf frame.
Why the run thread only: ``--idle`` also samples every idle helper thread (HTTP pool, Dagster's
log watchers), which would bury the one thread whose time is the shard's wall time.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

RUN_FRAME = "_run (payout_assets/cli/launcher.py"


def summarise(path: Path, rate_hz: float, top: int) -> str:
    by_frame: Counter[str] = Counter()
    by_process: Counter[str] = Counter()
    helpers: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        processes = [p for p in parts if p.startswith("process ")]
        frames = [p for p in parts if not p.startswith("process ")]
        if not frames:
            continue
        if not any(f.startswith(RUN_FRAME) for f in frames):
            if len(processes) > 3:  # a child of a run process (Dagster's log watchers)
                helpers[frames[-1][:90]] += count
            continue
        by_process[processes[-1].split(":", 1)[0]] += count
        own = [f for f in frames if "payout_assets/" in f and not f.startswith(RUN_FRAME)]
        by_frame[f"{own[-1] if own else '(dagster)'}  <-  {frames[-1]}"[:170]] += count
    total = sum(by_frame.values()) or 1
    out = [
        f"run threads: {len(by_process)} processes, {total / rate_hz:,.1f} s sampled "
        f"(per process: {', '.join(f'{v / rate_hz:.1f}' for v in sorted(by_process.values()))})",
        "",
        "| seconds | share | innermost payout_assets frame  <-  leaf frame |",
        "|---|---|---|",
    ]
    out += [
        f"| {n / rate_hz:,.1f} | {n / total:.1%} | `{key}` |"
        for key, n in by_frame.most_common(top)
    ]
    if helpers:
        out += ["", "child processes of the runs (idle included):"]
        out += [f"- {n / rate_hz:,.1f} s `{key}`" for key, n in helpers.most_common(3)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary")
    parser.add_argument("profile", type=Path, help="py-spy raw output (collapsed stacks)")
    parser.add_argument("--rate", type=float, default=50.0, help="the py-spy --rate used")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    print(summarise(args.profile, args.rate, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
