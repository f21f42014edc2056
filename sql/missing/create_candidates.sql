-- Every distinct id of one generation after normalisation: a valid id (64 lowercase hex) with an
-- empty reason, or the trimmed text of an invalid one with the reason it is not an id.
CREATE TABLE IF NOT EXISTS {db:Identifier}.{candidates:Identifier}
(
    condition_id String,
    reason       String
)
ENGINE = MergeTree
ORDER BY condition_id;
