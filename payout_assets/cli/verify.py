"""``payout-backfill verify``: the post-run validation, as one PASS/WARN/FAIL report.

The original scripts' seven validations, corrected, plus the ledger: the same rule functions the
asset checks run (``payout_assets/validate/rules.py``), over the whole ingest table and the
current snapshot's ledger. Exit code 1 on any FAIL.
"""

from __future__ import annotations

from payout_assets.settings import clickhouse_dsn
from payout_assets.validate import rules
from payout_assets.validate.rules import RuleResult
from payout_assets.warehouse.store import ClickHouseStore, StoreError

MAX_ERROR_RATE = 0.01
INGEST_TABLE = "resolutions_external_ingest"


def verify(store: ClickHouseStore) -> list[RuleResult]:
    with store.session():
        return [
            rules.ingested_unique(store, None),  # 1. rows and unique conditions…
            rules.canonical_ids(store),  # …each under its one canonical id
            *rules.payout_rules(rules.spool_payouts(store, None)),  # 2-4. sums, bounds, time
            rules.coverage(store),  # 5. coverage against the input (WARN)
            rules.error_rate(store, MAX_ERROR_RATE),  # 6. error rate < 1%
            rules.view_one_row(store),  # 7. the view exists, one row per condition…
            rules.view_external_present(store),  # …and shows every ingested payout
            rules.sources_agree(store),
            rules.ledger_accounts(store, final=True),
        ]


def run_verify() -> int:
    store = ClickHouseStore(clickhouse_dsn())
    print(f"verify: {store.display_dsn}")
    try:
        if not store.table_exists(INGEST_TABLE):
            # A fresh or mistyped store: the rules would each fail on a missing table, which
            # reads like corruption; what the operator needs is which store and what to do.
            print(
                f"FAIL  clickhouse: {store.display_dsn} holds no backfill yet (no {INGEST_TABLE}"
                " table): run payout-backfill run first, or set CLICKHOUSE_DSN to the store"
                " that holds it"
            )
            return 1
        results = verify(store)
    except StoreError as exc:
        print(f"FAIL  clickhouse: {exc}")
        return 1
    width = max(len(r.name) for r in results)
    for result in results:
        print(f"{result.status:<4}  {result.name:<{width}}  {result.summary}")
        sample = result.metadata.get("failure_sample") or result.metadata.get("sample")
        if not result.passed and sample:
            print("      " + str(sample).replace("\n", "\n      "))
    failed = [r.name for r in results if r.status == "FAIL"]
    print(f"verify: {'FAIL (' + ', '.join(failed) + ')' if failed else 'OK'}")
    return 1 if failed else 0
