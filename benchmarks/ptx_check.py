"""Compile every CUDA kernel of eventsim to PTX for a real GPU, on a machine without one.

The CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, used by the tests) runs the
kernels as Python, so it cannot catch what only the real compiler rejects:
typing errors in device code, unsupported calls, exceptions or allocation in a
scalar function called from a kernel. This script catches those without a GPU.
It runs a small ``Network(device="cuda")`` forward and backward pass (multi-
and single-spike, both spike-finding methods, two hidden layers) and a short
device-resident training run (``ResidentTrainer``) through the
real host code of ``eventsim._cuda`` with GPU copies replaced by NumPy arrays
and each kernel launch recorded instead of run; then it compiles each recorded
kernel with the Numba types of the arguments the host passed, using
``numba.cuda.compile_ptx`` (NVVM only, no driver or GPU needed).

Needs numba-cuda and the CUDA compiler libraries (NVRTC, NVVM), e.g. in a venv::

    pip install numba-cuda nvidia-cuda-nvrtc-cu12 nvidia-cuda-nvcc-cu12
    python benchmarks/ptx_check.py              # --cc 9.0 (H200/H100) by default

With ``ptxas`` on PATH (CUDA toolkit) it also assembles each kernel and prints
its registers, stack frame and spills; a ptxas older than the PTX that NVVM
wrote is reported per kernel, not counted as a failure. The GPU machine's
numba-cuda 0.30.4 was checked this way with CUDA 13.5 from PyPI::

    pip install "numba-cuda[cu13]==0.30.4" numpy==2.3.5 "nvidia-cuda-nvcc==13.5.*"
    PATH=<site-packages>/nvidia/cu13/bin:$PATH python benchmarks/ptx_check.py

Exit status 0 if every kernel compiles, 1 if one fails, 2 if PTX compilation
is not possible here (no numba-cuda or no NVVM/NVRTC).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import types

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    sys.exit("ptx_check.py compiles for a real GPU: unset NUMBA_ENABLE_CUDASIM")

import numba
import numpy as np
from numba import cuda

import eventsim as es
from eventsim import _cuda
from eventsim._train import Dataset, TrainConfig, Trainer


class _HostArray(np.ndarray):
    """A NumPy array standing in for a numba.cuda device array."""

    def copy_to_host(self):
        return np.array(self)

    def copy_to_device(self, ary):
        self[...] = ary


def _to_device(a):
    return np.array(a).view(_HostArray)


def _device_array(shape, dtype=np.float64):
    return np.zeros(shape, dtype).view(_HostArray)


def record_launches():
    """{kernel name: (kernel, set of Numba signatures)} for the launches of a few passes."""
    launches = {}

    def record(kernel, n_threads, *args):
        if n_threads <= 0:
            return
        sig = tuple(numba.typeof(np.asarray(a) if isinstance(a, np.ndarray) else a)
                    for a in args)
        launches.setdefault(kernel.py_func.__name__, (kernel, set()))[1].add(sig)

    # the host calls of numba.cuda that eventsim._cuda makes, on NumPy arrays
    cuda.to_device, cuda.device_array = _to_device, _device_array
    _cuda._launch = record
    _cuda.is_available = lambda: True
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (3, 12))
    x[rng.random(x.shape) > 0.6] = np.inf
    labels = rng.integers(0, 3, 3)
    for sizes in ([12, 6, 3], [12, 6, 5, 3]):
        for single_spike in (False, True):
            for method in ("closed_form", "root"):
                net = es.Network(sizes, es.LIF(0.8, 0.4), seed=1, device="cuda", init_mean=0.3,
                                 single_spike=single_spike, method=method)
                net.loss_and_grad(x, labels, wrt_inputs=True)
    for single_spike in (False, True):                  # the device-resident trainer
        config = TrainConfig(hidden=(6,), epochs=1, batch_size=2, device="cuda",
                             single_spike=single_spike, init_mean=0.3)
        data = Dataset(x, labels, x, labels, n_classes=3)
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
            Trainer(config, data, out, progress=False).fit()
    return launches


def _pretend_device(cc):
    """Make numba-cuda's device-function compilation target cc without asking a driver.

    compile_ptx itself needs no GPU, but a device function called from a kernel
    (``_sample_of``, or an ``@njit`` function such as ``neuron_forward``) is
    compiled for ``get_current_device().compute_capability``, which does."""
    device = types.SimpleNamespace(compute_capability=cc)
    for module_name in ("numba.cuda.dispatcher", "numba.cuda.compiler"):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, "get_current_device"):
            module.get_current_device = lambda: device


def assemble(ptx, cc):
    """ptxas's resource line (registers, stack, spills) for the PTX, if ptxas is on PATH."""
    ptxas = shutil.which("ptxas")
    if ptxas is None:
        return ""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        run = subprocess.run([ptxas, "-v", f"-arch=sm_{cc[0]}{cc[1]}", "-o", os.devnull, path],
                             capture_output=True, text=True)
    if run.returncode != 0 and "Unsupported .version" in run.stderr:
        # NVVM newer than this ptxas (e.g. numba-cuda's CUDA 13.5 NVVM, a 13.0 toolkit):
        # the PTX compiled; only this ptxas cannot read it
        why = next(line for line in run.stderr.splitlines() if "Unsupported" in line)
        return f"\n        ptxas: not assembled, this ptxas is too old ({why.split(': ', 1)[-1]})"
    if run.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{run.stderr}")
    used = [line.split("Used", 1)[1].strip() for line in run.stderr.splitlines()
            if "Used" in line]
    stack = [line.split("info    :", 1)[-1].strip() for line in run.stderr.splitlines()
             if "stack frame" in line]
    return "".join(f"\n        ptxas: {text}" for text in stack[:1] + used[:1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cc", default="9.0", help="compute capability (default 9.0)")
    args = parser.parse_args(argv)
    cc = tuple(int(part) for part in args.cc.split("."))
    _pretend_device(cc)
    try:
        cuda.compile_ptx(lambda: None, (), cc=cc)
    except Exception as exc:
        print(f"PTX compilation not possible here: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}")
        return 2
    launches = record_launches()
    failures = 0
    for name, (kernel, sigs) in sorted(launches.items()):
        for sig in sorted(sigs, key=str):
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
                print(f"ok    {name:28s} {len(ptx):8d} chars of PTX  {len(sig)} args"
                      f"{assemble(ptx, cc)}")
            except Exception:
                failures += 1
                print(f"FAIL  {name} {sig}")
                traceback.print_exc()
    expected = {name for name, value in vars(_cuda).items()
                if name.endswith("_kernel") and hasattr(value, "py_func")}
    missing = expected - set(launches)
    if missing:
        failures += len(missing)
        print(f"FAIL  kernels never launched by the passes: {sorted(missing)}")
    print(f"{len(launches)} kernels, {failures} failures, sm_{cc[0]}{cc[1]}, "
          f"numba {numba.__version__}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
