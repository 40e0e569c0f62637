"""glibc malloc tuning for a long-running process (the app), without Qt. A no-op elsewhere.

Browsing 10,000 studies allocates and frees many large, short-lived buffers on several threads
(decoded frames, full-resolution CAMs compacted on arrival, model batches on the executor
thread). With glibc's defaults the mmap threshold grows up to 32 MB after the first large free,
so later 5-20 MB buffers come from the heaps of per-thread arenas (up to 8 x cores of them) and
freed memory stays in the process: measured +60 MB RSS after 1,500 studies, more after 10,000.

    tune()      # at start-up, before the worker threads: few arenas, large blocks mmapped
    trim()      # give freed heap memory back to the OS (call when idle; off the GUI thread)
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENA_MAX = 2                 # the main arena + one shared by the worker threads
MMAP_THRESHOLD = 1 << 20      # blocks >= 1 MB (frames, CAMs, batches) are mmapped: freed at once
TRIM_THRESHOLD = 8 << 20      # and the heap top is returned beyond 8 MB free

_libc = None
_trimming = threading.Lock()


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            name = ctypes.util.find_library("c") or "libc.so.6"
            try:
                lib = ctypes.CDLL(name)
                lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                _libc = lib
            except (OSError, AttributeError):  # musl or another libc: nothing to tune
                _libc = False
    return _libc or None


def tune() -> bool:
    """Set the arena count and fixed mmap / trim thresholds (True if glibc took them)."""
    lib = _glibc()
    if lib is None:
        return False
    ok = lib.mallopt(M_ARENA_MAX, ARENA_MAX) == 1
    ok = lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and ok
    ok = lib.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    return ok


def trim() -> bool:
    """malloc_trim(0): free heap pages go back to the OS. Takes a few ms on a large heap (it
    locks each arena in turn): call it off the GUI thread. True if memory was released; False
    also when another trim is running."""
    lib = _glibc()
    if lib is None or not _trimming.acquire(blocking=False):
        return False
    try:
        return bool(lib.malloc_trim(0))
    finally:
        _trimming.release()


def trim_in_background() -> None:
    """trim() on a short-lived daemon thread (never blocks the caller)."""
    if _glibc() is not None and not _trimming.locked():
        threading.Thread(target=trim, name="radview-malloc-trim", daemon=True).start()
