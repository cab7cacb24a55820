"""Keep the worker's C heap from holding on to memory it freed (glibc only; elsewhere a no-op).

Through the 10M log the worker's RSS kept climbing while what it holds stays bounded: its
threads (the feed, the write-behind writer, Faust's loop) each get a malloc arena of their own,
and large buffers (fetch responses, COPY text) freed in one are kept for reuse. Fewer arenas,
large blocks mapped and unmapped on their own, and the heap trimmed now and then.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
# Blocks from this size on are mapped on their own and returned when freed (glibc's default
# threshold grows with what was freed, up to 32 MiB, keeping such blocks in the heap).
MMAP_THRESHOLD = 1 << 20


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def limit_arenas() -> bool:
    """Set the allocator up before the worker starts its threads; return whether it could."""
    if _LIBC is None:
        return False
    ok = bool(_LIBC.mallopt(M_ARENA_MAX, ARENAS)) and bool(
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )
    if not ok:
        log.info("mallopt refused: the C heap is left as it is")
    return ok


def trim() -> None:
    """Give the free memory at the heap's top and in its arenas back to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
