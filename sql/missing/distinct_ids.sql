-- Distinct ids that entered, counted by grouping in the candidates' key order (streams; a
-- uniqExact hash set of 1,000,000 ids peaked +126 MB).
SELECT count()
FROM (SELECT condition_id FROM {db:Identifier}.{candidates:Identifier} GROUP BY condition_id)
SETTINGS optimize_aggregation_in_order = 1
