-- Run by an embedded (chdb) store just before it closes the engine. The engine allocates with
-- jemalloc, which keeps freed pages for reuse; in a shard process that holds the engine for
-- many short sessions they pile up (measured: 284 MB of heap after a few FINAL reads of the
-- 170k-row ingest table, 84 MB after this). A server manages its own memory, so a store reached
-- over http(s) never sends it.
SYSTEM JEMALLOC PURGE
