"""retain_freed_memory: freed large buffers stay in the heap for reuse."""

import platform
import subprocess
import sys

import pytest

SIZE = 48 << 20  # above glibc's largest dynamic mmap threshold (32 MB)

# glibc's mallinfo2 (2.33+): fordblks = free bytes held in the heap
SCRIPT = f"""
import ctypes, sys
import numpy as np
from eventsim._malloc import retain_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "retain":
    assert retain_freed_memory()
np.ones({SIZE} // 8)  # allocate, touch, free
print(libc.mallinfo2().fordblks)
"""


def free_heap_bytes_after_free(mode):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc"
                    or tuple(map(int, platform.libc_ver()[1].split("."))) < (2, 33),
                    reason="mallopt thresholds and mallinfo2 are glibc's (2.33+)")
def test_freed_buffers_stay_in_the_heap():
    assert free_heap_bytes_after_free("default") < SIZE  # unmapped: back to the system
    assert free_heap_bytes_after_free("retain") >= SIZE  # kept for the next batch
