-- Active parts of the tables every shard run writes (see merge_shard_writes.sql).
SELECT count()
FROM system.parts
WHERE active
  AND ((database = 'default' AND table = 'resolutions_external_ingest')
       OR (database = 'payout_backfill' AND table = 'id_ledger'))
