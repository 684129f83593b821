"""Give memory that PyTorch has freed back to the operating system (glibc ``malloc_trim``).

Why: on CPU, torch runs the GELU of every encoder layer through oneDNN, which JIT-compiles and caches a
kernel for each new (batch, length) shape. Those small, long-lived allocations land between the large
activation buffers that glibc serves from its heap (its mmap threshold rises to 32 MB after the first
large frees), so freed activations can no longer be returned to the OS and the resident size ratchets up
with every new batch shape, while one repeated request stays flat. It is not a Python-level leak
(tracemalloc: +1.5 MB while RSS grew 477 MB). GELU alone over 3,000 random shapes grows RSS by 1.7 GB;
``malloc_trim(0)`` after each call holds it to +43 MB (the bounded oneDNN cache itself).

Measured with the shipped model (400 varied requests in-process, 1-16 documents of 5-120 words): 553 ->
971 MB (+76%) without, 518 -> 534 MB (+3%) with ``malloc_trim(0)`` after every engine pass, for 3-6% of
throughput (the freed pages are faulted back in by the next pass; the call itself takes ~3 ms). Fixing
glibc's mmap threshold instead costs ~20%; jemalloc or disabling oneDNN's cache cost as much as this.

``CROSSRANK_NO_MALLOC_TRIM=1`` switches it off (to measure the difference). Elsewhere than glibc (macOS,
Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

DISABLE_ENV = "CROSSRANK_NO_MALLOC_TRIM"


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # None (or an error) where the libc is not glibc
            return None
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (AttributeError, OSError, ValueError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def malloc_trim_available() -> bool:
    """True where ``release_freed_memory`` can do anything (glibc)."""
    return _malloc_trim() is not None


def release_freed_memory() -> bool:
    """Return the allocator's free pages to the OS; True if the C library was asked to.

    False (and nothing done) without glibc, or when ``CROSSRANK_NO_MALLOC_TRIM`` is set to a non-empty
    value other than ``0``. Call it after each engine pass, outside any request's latency; it only
    releases memory that is already free, so scores are unaffected.
    """
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return False
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
