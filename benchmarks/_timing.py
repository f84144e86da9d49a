"""Shared timing helper of the benchmark scripts."""

import statistics
import time


def interleaved(fns: dict, repeats: int) -> dict:
    """Time each callable once per repeat, in turn (so background load hits all
    of them alike); returns name -> (best s, median s, last result)."""
    times = {k: [] for k in fns}
    last = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {k: (min(v), statistics.median(v), last[k]) for k, v in times.items()}
