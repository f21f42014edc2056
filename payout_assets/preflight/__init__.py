"""Pre-flight checks: everything a backfill needs, checked in seconds, before it starts.

The original scripts had a pre-flight check because the expensive failures were the late ones: a
wrong dialect found after an hour of requests, a missing table found at ingest time. Each check
here is a plain function returning :class:`CheckResult` rows (PASS / WARN / FAIL, what was seen,
and for anything not PASS the fix), so ``payout-backfill preflight`` and the Dagster job
``preflight`` run exactly the same code.

Every result goes through :func:`scrub` before anyone sees it: the DSN password, the API key and
custom header values are replaced by ``***`` even if a driver puts them into an error message.
"""
