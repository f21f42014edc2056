SELECT source, count() AS conditions, countIf(winning_index = -1) AS split
FROM cascadian_clean.vw_resolutions_truth
GROUP BY source
ORDER BY source
