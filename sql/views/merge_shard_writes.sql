-- Run by the view step, before its whole-table reads, on an engine opened without background
-- merges: one merge now on each table every shard run writes. Shard runs do not merge
-- (NO_MERGES_OPTIONS in payout_assets/write/store.py), so a backfill leaves these tables in one
-- small part per shard slice, and reading ~200 parts with FINAL, part by part, took the view
-- run's heap from ~700 to ~1,000 MB (1,000,000 ids). OPTIMIZE without FINAL merges what the
-- merge policy would pick (never a rewrite of the whole table); the view repeats it while the
-- part count shrinks. A background merge holding the parts would make it a no-op, which is
-- why the engine that runs it has none.
OPTIMIZE TABLE default.resolutions_external_ingest;
OPTIMIZE TABLE payout_backfill.id_ledger;
