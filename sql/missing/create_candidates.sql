-- Scratch tables of one generation:
-- candidates: every distinct id after normalisation: a valid id (64 lowercase hex) with an empty
--   reason, or the trimmed text of an invalid one with the reason it is not an id;
-- changed: ids the subgraph reports changed since the previous snapshot (incremental refresh);
-- unchanged: ids the previous snapshot found unresolved or absent that have not changed since,
--   so asking again cannot tell anything new.
CREATE TABLE IF NOT EXISTS {db:Identifier}.{candidates:Identifier}
(
    condition_id String,
    reason       String
)
ENGINE = MergeTree
ORDER BY condition_id;

CREATE TABLE IF NOT EXISTS {db:Identifier}.{changed:Identifier}
(
    condition_id String
)
ENGINE = MergeTree
ORDER BY condition_id;

CREATE TABLE IF NOT EXISTS {db:Identifier}.{unchanged:Identifier}
(
    condition_id String,
    state        String
)
ENGINE = MergeTree
ORDER BY condition_id;
