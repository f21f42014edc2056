-- Split a generation's candidates into invalid, already resolved, unchanged since the previous
-- snapshot (ledger) and missing (the new table), record the missing ones as pending, and swap
-- the new table in.

INSERT INTO payout_backfill.id_ledger
SELECT {generation:String}, condition_id, 'invalid_id', any(reason), -1, {run_id:String},
       {version:UInt64}, now64(3)
FROM {db:Identifier}.{candidates:Identifier}
WHERE reason != ''
GROUP BY condition_id;

INSERT INTO payout_backfill.id_ledger
SELECT {generation:String}, c.condition_id, 'already_resolved', t.source, -1, {run_id:String},
       {version:UInt64}, now64(3)
FROM (SELECT DISTINCT condition_id FROM {db:Identifier}.{candidates:Identifier} WHERE reason = '') AS c
INNER JOIN cascadian_clean.vw_resolutions_truth AS t ON t.condition_id = c.condition_id;

INSERT INTO payout_backfill.id_ledger
SELECT {generation:String}, condition_id, state, {unchanged_reason:String}, -1, {run_id:String},
       {version:UInt64}, now64(3)
FROM {db:Identifier}.{unchanged:Identifier};

CREATE TABLE {db:Identifier}.{next:Identifier} AS payout_backfill.missing_condition_ids;

INSERT INTO {db:Identifier}.{next:Identifier} (condition_id, shard, generation)
SELECT condition_id, cityHash64(condition_id) % {shards:UInt16}, {generation:String}
FROM (SELECT DISTINCT condition_id FROM {db:Identifier}.{candidates:Identifier} WHERE reason = '')
WHERE condition_id NOT IN (SELECT condition_id FROM cascadian_clean.vw_resolutions_truth)
  AND condition_id NOT IN (SELECT condition_id FROM {db:Identifier}.{unchanged:Identifier});

INSERT INTO payout_backfill.id_ledger
SELECT generation, condition_id, 'pending', '', toInt16(shard), {run_id:String}, {version:UInt64},
       now64(3)
FROM {db:Identifier}.{next:Identifier};

EXCHANGE TABLES payout_backfill.missing_condition_ids AND {db:Identifier}.{next:Identifier};
