-- A shard's missing ids, streamed once into a spool file the shard then fetches from.
SELECT condition_id
FROM payout_backfill.missing_condition_ids
WHERE shard = {shard:UInt16} AND generation = {generation:String}
ORDER BY condition_id
