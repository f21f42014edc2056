"""`payout-backfill preflight`'s chain checks against the local node and a capped provider."""

from __future__ import annotations

import pytest

from payout_assets.preflight.polygon import check_polygon
from payout_assets.preflight.result import Status
from payout_assets.sources.polygon.rpc import RpcSettings
from payout_standins.polygon import LocalPolygon
from payout_standins.polygon.chain import free_port
from payout_standins.polygon.provider import ProviderProxy, ProviderRules

pytestmark = pytest.mark.integration


def _statuses(settings: RpcSettings) -> dict[str, tuple[Status, str, str]]:
    return {r.name: (r.status, r.detail, r.fix) for r in check_polygon(settings)}


def test_a_good_provider_passes_every_check(chain: LocalPolygon) -> None:
    chain.mine(3)
    results = _statuses(RpcSettings(url=chain.url, start_block=0, max_range=100))
    assert {name: s for name, (s, _, _) in results.items()} == {
        "polygon: provider reachable": Status.PASS,
        "polygon: chain and contract": Status.PASS,
        "polygon: finalized block": Status.PASS,
        "polygon: eth_getLogs range": Status.PASS,
    }
    assert "(finalized tag)" in results["polygon: finalized block"][1]


def test_a_capped_provider_is_a_warning_naming_the_range_that_works(chain: LocalPolygon) -> None:
    chain.mine(40)
    with ProviderProxy(chain.url, ProviderRules(max_range=8, style="quicknode")) as proxy:
        results = _statuses(RpcSettings(url=proxy.url, start_block=0, max_range=32))
    status, detail, fix = results["polygon: eth_getLogs range"]
    assert status is Status.WARN
    assert "refused 32 blocks; 8 work" in detail and "POLYGON_MAX_RANGE=8" in fix


def test_no_contract_and_no_provider_fail_with_the_fix(chain: LocalPolygon) -> None:
    wrong = "0x" + "12" * 20
    results = _statuses(RpcSettings(url=chain.url, ctf_address=wrong))
    status, detail, _ = results["polygon: chain and contract"]
    assert status is Status.FAIL and "no contract code" in detail
    down = _statuses(RpcSettings(url=f"http://127.0.0.1:{free_port()}"))
    assert down["polygon: provider reachable"][0] is Status.FAIL
    assert len(down) == 1
