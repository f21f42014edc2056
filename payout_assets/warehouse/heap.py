"""The Python side of a process's heap: glibc malloc, which Python and its threads allocate from.

The embedded engine has its own allocator (jemalloc, tuned in ``store.py``); this module covers
the rest. A shard process fetches on a small thread pool while a writer thread stages rows, and
glibc gives each thread that allocates its own arena. Memory freed in one arena is kept for reuse
by that arena only, so a shard would end its fetch with free memory it still holds. One arena
for the whole process and a trim after each engine session hand it back.

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
    """Return the heap's free pages to the OS (glibc ``malloc_trim``, a few milliseconds)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
