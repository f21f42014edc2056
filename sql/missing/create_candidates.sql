-- Valid, normalised ids of one generation (may repeat: "0xAB…" and "ab…" are the same id).
CREATE TABLE IF NOT EXISTS {db:Identifier}.{candidates:Identifier}
(
    condition_id String
)
ENGINE = MergeTree
ORDER BY condition_id;
