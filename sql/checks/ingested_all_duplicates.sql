SELECT count(), uniqExact(condition_id) FROM default.resolutions_external_ingest FINAL
