SELECT count()
FROM payout_backfill.missing_condition_ids
WHERE shard = {shard:UInt16} AND generation = {generation:String}
