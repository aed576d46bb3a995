"""glibc's allocator, set for the long-running agent (bench/README.md, memory).

glibc gives threads that allocate at the same time arenas of their own (up to 8 per core),
and each arena keeps the memory its thread freed. The agent's capture, analysis, MQTT and
housekeeping threads, FFmpeg's and LiteRT's, left ~3 MB more resident that way than in one
arena. Its threads mostly hold the GIL or allocate once, so sharing one costs no CPU
that ``bench_pipeline.py cpu`` sees.
"""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # glibc's malloc.h
ARENA_ENV = "MALLOC_ARENA_MAX"  # glibc reads it at start; an admin's setting wins


def limit_malloc_arenas(count: int = 1) -> bool:
    """At most ``count`` malloc arenas from now on; call before the threads start. False
    (nothing changed) where ``MALLOC_ARENA_MAX`` is set, or the C library has no
    ``mallopt`` (not glibc)."""
    if os.environ.get(ARENA_ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, count))
