"""A local Polygon: anvil from npm with a stand-in for ConditionalTokens at its real address."""

from payout_standins.polygon.chain import (
    CHAIN_ID,
    CTF_ADDRESS,
    DEV_ACCOUNT,
    LocalPolygon,
    Resolution,
    Resolved,
)

__all__ = ["CHAIN_ID", "CTF_ADDRESS", "DEV_ACCOUNT", "LocalPolygon", "Resolution", "Resolved"]
