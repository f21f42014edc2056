-- Split a generation's candidates into invalid, already resolved, unchanged since the previous
-- snapshot (ledger), and create the new missing table. missing/pending.sql then fills it and
-- records its ids as pending, shard by shard, and missing/swap.sql swaps it in.

INSERT INTO payout_backfill.id_ledger
SELECT {generation:String}, condition_id, 'invalid_id', any(reason), -1, {run_id:String},
       {version:UInt64}, now64(3)
FROM {db:Identifier}.{candidates:Identifier}
WHERE reason != ''
GROUP BY condition_id;

INSERT INTO payout_backfill.id_ledger
SELECT {generation:String}, c.condition_id, 'already_resolved', t.source, -1, {run_id:String},
       {version:UInt64}, now64(3)
FROM (SELECT condition_id FROM {db:Identifier}.{candidates:Identifier} WHERE reason = ''
      GROUP BY condition_id) AS c
INNER JOIN cascadian_clean.vw_resolutions_truth AS t ON t.condition_id = c.condition_id
SETTINGS optimize_aggregation_in_order = 1;

INSERT INTO payout_backfill.id_ledger
SELECT {generation:String}, condition_id, state, {unchanged_reason:String}, -1, {run_id:String},
       {version:UInt64}, now64(3)
FROM {db:Identifier}.{unchanged:Identifier};

CREATE TABLE {db:Identifier}.{next:Identifier} AS payout_backfill.missing_condition_ids;
