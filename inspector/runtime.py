"""Process-wide tuning the inspector's commands apply once at start."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys
from pathlib import Path

# glibc hands every block over its mmap threshold (128 kB, adapting up to 32 MB) straight back
# to the kernel when freed, and trims the heap top above 128 kB: a CNN's activations at batch 16
# (tens of MB each) were then page-faulted in afresh on every batch, 26,000 faults per image,
# which doubled the patch extractor's time (47 -> 22 ms per image at 288 px, peak memory alike).
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Let glibc reuse freed tensor memory instead of returning it to the kernel. -> applied;
    False where the C library is not glibc (macOS, Windows, musl), which have their own allocators."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def freeze_heap() -> int:
    """Collect once, then move every object alive now out of the cyclic collector's reach (they
    are still freed by reference counting when they die). -> objects frozen.

    A loaded station holds about half a million long-lived objects (torch, SQLAlchemy, the
    model), and every full collection walked them all with every Python thread stopped: 254-333 ms
    on a 2-core CPU, every 20-40 s on the line, the line's largest latencies and its fail-safe
    timeouts (docs/service.md). Frozen, a full collection walks only what came later. For a process that
    has loaded what it will keep (the station, before it serves); an old model that a hot reload
    replaces is still freed by reference counting (of a dropped engine, 94 small objects sat in
    cycles and stay; no tensor)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def yield_cpu_to_the_line(nice: int) -> int:
    """Lower this process's CPU priority to ``nice`` where it is higher (Unix; raising it back
    needs root). Linux keeps it per thread and a new thread inherits its creator's, so every
    thread already running is set too (torch's, a database pool's). -> the niceness now."""
    if not hasattr(os, "setpriority"):
        return 0
    tasks = Path("/proc/self/task")
    for tid in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
    return os.getpriority(os.PRIO_PROCESS, 0)
