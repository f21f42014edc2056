-- Exactly one row per condition in the truth view.
SELECT count(), uniqExact(condition_id) FROM cascadian_clean.vw_resolutions_truth
