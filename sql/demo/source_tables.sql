-- The source tables the pipeline reads, as they exist in production (DDL from the original
-- scripts). The demo and the tests create them; production already has them.

CREATE TABLE IF NOT EXISTS default.market_resolutions_final
(
    condition_id_norm FixedString(64),
    payout_numerators Array(UInt8),
    payout_denominator UInt8,
    outcome_count UInt8,
    winning_outcome LowCardinality(String),
    source LowCardinality(String),
    version UInt8,
    resolved_at Nullable(DateTime),
    updated_at DateTime,
    winning_index UInt16
)
ENGINE = ReplacingMergeTree
ORDER BY condition_id_norm;

CREATE TABLE IF NOT EXISTS default.trades_raw
(
    trade_id     UInt64,
    condition_id String,
    traded_at    DateTime
)
ENGINE = MergeTree
ORDER BY (condition_id, trade_id);
