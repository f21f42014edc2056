-- Load one slice (shard/slices.sql) of a shard run's validated, resolved rows; the version makes
-- this load the newest fetch. Only canonical ids (64 lowercase hex) enter the ingest table: two
-- spellings of one condition would be two keys, two payouts. A resolved row with any other id is
-- recorded as rejected instead.
INSERT INTO default.resolutions_external_ingest
SELECT condition_id, payout_numerators, payout_denominator, winning_index, resolved_at,
       'goldsky', block_number, fetched_at, {run_id:String}, {version:UInt64}
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String} AND outcome = 'resolved'
  AND condition_id BETWEEN {lo:String} AND {hi:String}
  AND match(condition_id, '^[0-9a-f]{64}$');

INSERT INTO payout_backfill.id_ledger
SELECT generation, condition_id,
       if(match(condition_id, '^[0-9a-f]{64}$'), 'ingested', 'rejected'),
       if(match(condition_id, '^[0-9a-f]{64}$'), '',
          'condition id is not canonical (64 lowercase hex digits, no 0x)'),
       toInt16(shard), {run_id:String}, {version:UInt64}, now64(3)
FROM payout_backfill.goldsky_payouts
WHERE shard = {shard:UInt16} AND run_id = {run_id:String} AND outcome = 'resolved'
  AND condition_id BETWEEN {lo:String} AND {hi:String};
