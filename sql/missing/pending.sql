-- One shard of the new missing table, and its ids recorded as pending. One shard per run of this
-- file: on the embedded engine an insert's heap is the calling process's and grows with the rows
-- it carries (it sorts them), so 1,000,000 ids at once peaked +334 MB (the table) and +268 MB
-- (the ledger); a shard's worth at a time keeps it the size of a shard.
-- Distinct by grouping in the candidates' key order (streams; DISTINCT hashed every id).
INSERT INTO {db:Identifier}.{next:Identifier} (condition_id, shard, generation)
SELECT condition_id, {shard:UInt16}, {generation:String}
FROM (SELECT condition_id FROM {db:Identifier}.{candidates:Identifier} WHERE reason = ''
        AND cityHash64(condition_id) % {shards:UInt16} = {shard:UInt16}
      GROUP BY condition_id)
WHERE condition_id NOT IN (SELECT condition_id FROM cascadian_clean.vw_resolutions_truth)
  AND condition_id NOT IN (SELECT condition_id FROM {db:Identifier}.{unchanged:Identifier})
SETTINGS optimize_aggregation_in_order = 1;

INSERT INTO payout_backfill.id_ledger
SELECT generation, condition_id, 'pending', '', toInt16(shard), {run_id:String}, {version:UInt64},
       now64(3)
FROM {db:Identifier}.{next:Identifier}
WHERE shard = {shard:UInt16};
