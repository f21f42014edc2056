"""The Python side of a process's heap: glibc malloc, which Python and its threads allocate from.

The embedded engine has its own allocator (jemalloc, tuned in ``store.py``); this module covers
the rest. A shard process fetches on a small thread pool while a writer thread stages rows, and
glibc gives each thread that allocates its own arena. Memory freed in one arena is kept for reuse
by that arena only, so a shard ended its fetch with ~13 MB free but held (``mallinfo2``, 170,448
ids). One arena for the whole process and a trim after each engine session hand it back.
Measured with ``python -m bench.run --ids 170448 --scale-ids 1000000 --fixed-ids 0
--skip-baseline --ingest-rows 0``, with the compression block settings of sql/ddl/pipeline.sql:
a shard's peak heap 261-288 -> 250-285 MB at 170,448 ids and 308-344 -> 276-322 MB at 1,000,000.

Only glibc has these calls; elsewhere (macOS, musl) both functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def one_arena() -> None:
    """Make every thread allocate from the main arena (arenas already made stay). Python runs
    one thread at a time under the GIL, so the threads hardly contend for it."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, 1)


def trim() -> None:
    """Return the heap's free pages to the OS (glibc ``malloc_trim``: 2.7 ms on a heap with
    ~30 MB freed in holes, next to nothing when there is nothing to return)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
