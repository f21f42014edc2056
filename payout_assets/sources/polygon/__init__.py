"""Payouts straight from Polygon: ConditionalTokens' ConditionResolution logs over JSON-RPC."""
