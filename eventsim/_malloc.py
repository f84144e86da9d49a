"""Keep freed memory in the process heap during training (glibc's ``mallopt``).

A training step allocates and frees arrays of a few MB (spike buffers of
(batch, neurons, spikes) and gradients). glibc serves such sizes with fresh
``mmap`` pages or trims them off the heap when freed, so every batch pays again
for page faults and zeroing: about a fifth of the CPU time of a 784-400-10
training run went to the kernel. Raising the mmap and trim thresholds keeps
that memory in the heap for reuse, at the cost of holding up to
``RETAIN_BYTES`` of freed memory.
"""

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: allocations below this come from the heap; this much freed memory may be kept
RETAIN_BYTES = 256 << 20


def retain_freed_memory(limit: int = RETAIN_BYTES) -> bool:
    """Set glibc's mmap and trim thresholds to ``limit`` bytes for this process.

    Returns whether it took effect (False off Linux/glibc, where it does nothing).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))
