"""Keep freed CPU memory mapped, so large temporary tensors do not page-fault on every call.

PyTorch allocates CPU tensors with ``malloc``. glibc serves blocks of several MB with ``mmap``
and gives them back to the kernel on ``free`` (or trims them off the heap), so the next
rasterizer call touches brand-new pages: about 9,000 page faults per 16k-Gaussian render,
measured to double its time on a 2-core machine. Raising glibc's mmap and trim thresholds
keeps those pages in the heap for reuse — what ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` would do if set before start-up.

The setting is process-wide and only exists on glibc; :func:`keep_freed_memory` applies it
once and does nothing elsewhere, under another allocator (jemalloc, tcmalloc ignore it), or
when the environment variable ``PARTRM_GYM_KEEP_FREED_MEMORY=0``. The cost is that up to
``TRIM_THRESHOLD`` bytes of freed memory stay with the process instead of the OS.
"""

from __future__ import annotations

import ctypes
import os
import sys

OPT_OUT_ENV = "PARTRM_GYM_KEEP_FREED_MEMORY"
M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum: blocks below it come from the reusable heap
TRIM_THRESHOLD = 1 * 2**30  # free heap kept before returning memory to the OS

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the glibc thresholds once per process; True if they are in effect."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get(OPT_OUT_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own libc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
