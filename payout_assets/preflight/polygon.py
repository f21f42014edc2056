"""The chain source's checks: the provider answers, serves Polygon, holds the contract, has a
finalized block, and accepts ``eth_getLogs`` over the configured range (or the range it does)."""

from __future__ import annotations

from dataclasses import replace

from payout_assets.preflight.result import CheckResult, failed, passed, warned
from payout_assets.redact import redact
from payout_assets.sources.polygon.errors import RpcError
from payout_assets.sources.polygon.rpc import RpcClient, RpcSettings
from payout_assets.sources.polygon.scan import RangeSizer, check_chain, finalized_block, scan

PROBE_TIMEOUT_S = 5.0


def check_polygon(settings: RpcSettings) -> list[CheckResult]:
    """One bounded attempt per call (5 s timeout), so a wrong URL is reported in seconds."""
    probe = replace(settings, timeout_s=PROBE_TIMEOUT_S, max_attempts=1, max_retry_s=0.0)
    url = redact(settings.url)
    with RpcClient(probe) as client:
        try:
            client.call("eth_chainId")
        except RpcError as exc:
            return [
                failed(
                    "polygon: provider reachable",
                    f"{url}: {exc}",
                    "set POLYGON_RPC_URL to a Polygon PoS JSON-RPC URL this host can reach",
                )
            ]
        results = [passed("polygon: provider reachable", url)]
        try:
            check_chain(client, settings.ctf_address)
        except RpcError as exc:
            return [*results, failed("polygon: chain and contract", str(exc), "see the detail")]
        results.append(
            passed("polygon: chain and contract", f"chain id 137, code at {settings.ctf_address}")
        )
        try:
            final, how = finalized_block(client)
        except RpcError as exc:
            return [*results, failed("polygon: finalized block", str(exc), "use another provider")]
        results.append(passed("polygon: finalized block", f"{final.number:,} ({how})"))
        results.append(_range_check(client, settings, final.number))
    return results


def _range_check(client: RpcClient, settings: RpcSettings, finalized: int) -> CheckResult:
    """Read the last ``max_range`` blocks before the finalized one the way the scan does; the
    range the provider accepted is what the scan will start from."""
    first = max(settings.start_block, finalized - settings.max_range + 1)
    sizer = RangeSizer(settings.max_range)
    try:
        for _chunk in scan(client, settings.ctf_address, first, finalized, sizer):
            pass
    except RpcError as exc:  # a refusal of even one-block ranges arrives here too
        return failed(
            "polygon: eth_getLogs range",
            str(exc),
            "the provider refused eth_getLogs; use one that serves logs (archive access)",
        )
    if sizer.refusals:
        return warned(
            "polygon: eth_getLogs range",
            f"the provider refused {settings.max_range:,} blocks; {sizer.current:,} work",
            f"set POLYGON_MAX_RANGE={sizer.current} (the scan adapts either way, at a cost)",
        )
    return passed("polygon: eth_getLogs range", f"{settings.max_range:,} blocks per call accepted")
