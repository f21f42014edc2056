"""The demo's chain: the subgraph simulator's conditions, resolved on the local Polygon.

Most resolutions agree with the simulator; some conditions the simulator still calls unresolved
are resolved on chain (the subgraph lags the chain), and a few carry the opposite payout (the
subgraph's "incorrect data"), so the demo shows rows from both sources and the disagreements.
Resolutions land a few blocks apart, so the scan's block ranges show as several partitions.
"""

from __future__ import annotations

from dataclasses import dataclass

from payout_standins.goldsky import Universe
from payout_standins.polygon.chain import LocalPolygon

DEMO_RANGE_BLOCKS = 25  # POLYGON_RANGE_BLOCKS of the demo: a few partitions for the UI
PER_BLOCK = 150
BLOCKS_BETWEEN = 4
AGREE_EVERY = 3  # every 3rd resolved condition of the demo's ids is resolved on chain too
CHAIN_ONLY_EVERY = 10  # every 10th unresolved one is resolved on chain only
DISAGREE_EVERY = 997  # ... and these carry the opposite payout


@dataclass(frozen=True)
class ChainSeed:
    resolutions: int
    agreeing: int
    chain_only: int
    disagreeing: int
    last_block: int


def _plan(universe: Universe, count: int) -> tuple[list[tuple[str, list[int]]], ChainSeed]:
    plan: list[tuple[str, list[int]]] = []
    agreeing = chain_only = disagreeing = 0
    for i in range(count):
        if i % 100 == 99 or i % 20 == 19:
            continue  # malformed or unknown ids in the demo's trades table
        cid = universe.condition_id(i)
        state = universe.state(cid)
        if state is None:
            continue
        if state.resolved and state.numerators and i % AGREE_EVERY == 0:
            payouts = [int(n) for n in state.numerators]
            if i % DISAGREE_EVERY == 0 and len(set(payouts)) > 1:
                payouts = payouts[::-1]
                disagreeing += 1
            else:
                agreeing += 1
            plan.append((cid.removeprefix("0x"), payouts))
        elif not state.resolved and i % CHAIN_ONLY_EVERY == 0:
            plan.append((cid.removeprefix("0x"), [1, 0]))
            chain_only += 1
    return plan, ChainSeed(len(plan), agreeing, chain_only, disagreeing, 0)


def seed_chain(chain: LocalPolygon, universe: Universe, count: int) -> ChainSeed:
    """Resolve the demo's conditions on ``chain``, then mine until the last one is finalized."""
    plan, seed = _plan(universe, count)
    last = 0
    for start in range(0, len(plan), PER_BLOCK):
        last = chain.seed(plan[start : start + PER_BLOCK])
        chain.mine(BLOCKS_BETWEEN)
    chain.mine(4)  # the local node finalizes blocks two behind its head
    return ChainSeed(seed.resolutions, seed.agreeing, seed.chain_only, seed.disagreeing, last)
