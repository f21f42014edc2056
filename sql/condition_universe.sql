SELECT DISTINCT condition_id FROM default.trades_raw
