-- One chunk of a shard's missing ids, by keyset on the table's sort key.
SELECT condition_id
FROM payout_backfill.missing_condition_ids
WHERE shard = {shard:UInt16} AND generation = {generation:String} AND condition_id > {after:String}
ORDER BY condition_id
LIMIT {limit:UInt32}
