SELECT count() FROM default.resolutions_external_ingest FINAL
