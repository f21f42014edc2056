-- What every pipeline table gets in the embedded engine (warehouse/schema.py), once per table.
-- The engine deletes the parts a merge made outdated only in its cleanup task, which first runs
-- cleanup_delay_period (plus up to cleanup_delay_period_random_add) seconds after the engine
-- opens: 30 to 40 by default, longer than the pipeline's sessions last, so outdated parts piled
-- up with every backfill and every engine open loaded them all. With these, any session that
-- lasts a second deletes them. A server's cleanup runs all along: it keeps its defaults.
ALTER TABLE {table} MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
