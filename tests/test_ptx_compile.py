"""Every CUDA kernel compiles for a real GPU (sm_90), checked without a GPU.

The simulator tests run the kernels as Python; this runs
``benchmarks/ptx_check.py``, which compiles each kernel with NVVM (and
assembles it with ptxas where that is on PATH) for the argument types the host
code passes. Skipped where numba cannot compile PTX (no NVVM/NVRTC installed).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_cuda_kernels_compile_to_ptx_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ptx_check.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode == 2:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert "0 failures" in proc.stdout
