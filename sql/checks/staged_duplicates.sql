-- Ids staged more than once in one slice of a shard run (a copy shares its id's slice).
SELECT condition_id, count() AS copies
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String}
  AND condition_id BETWEEN {lo:String} AND {hi:String}
GROUP BY condition_id
HAVING copies > 1
ORDER BY condition_id
LIMIT 20
