-- The chain source's tables (payout_assets/sources/polygon), applied with ddl/pipeline.sql.

-- Every ConditionResolution log read from ConditionalTokens, one row per log, with where it sits
-- on the chain. A rescan of a block range writes the same (block_number, log_index) again with a
-- newer version; rows a reorg invalidated are deleted by the scan (warehouse/chain.py).
CREATE TABLE IF NOT EXISTS payout_backfill.polygon_resolutions
(
    condition_id       String,                  -- 64 lowercase hex
    outcome            LowCardinality(String),  -- resolved | rejected
    reason             String,                  -- the rules a rejected row breaks
    payout_numerators  Array(UInt64),           -- empty when rejected
    payout_denominator UInt64,                  -- the numerators' sum; 0 when rejected
    winning_index      Int16,                   -- -1 when the payout is split
    resolved_at        DateTime('UTC'),         -- the event's block time
    raw_numerators     Array(String),           -- the uint256 numerators, exact
    outcome_slot_count UInt16,
    oracle             String,
    question_id        String,
    block_number       UInt64,
    block_hash         String,
    tx_hash            String,
    log_index          UInt32,
    block_range        String,                  -- the partition of polygon_condition_resolutions
    run_id             String,
    version            UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (block_number, log_index);

-- The scan's checkpoint within a block range: each chunk of blocks read and written, in order.
-- A run continues after the highest last_block of its range; last_hash (the scan's end, when
-- known) lets it see a reorg first.
CREATE TABLE IF NOT EXISTS payout_backfill.polygon_scan_chunks
(
    block_range  String,
    first_block  UInt64,
    last_block   UInt64,
    last_hash    String,
    events       UInt32,
    rpc_range    UInt32,                        -- the eth_getLogs range in use after this chunk
    run_id       String,
    recorded_at  DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (block_range, last_block);
