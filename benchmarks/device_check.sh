#!/usr/bin/env bash
# The one prepared GPU check, for a machine with an NVIDIA GPU (e.g. the project's
# H200 device machine): CUDA vs CPU agreement and speed (benchmarks/gpu_check.py),
# one real training epoch on device="cuda", and the training benchmark with the
# dense Algorithm 1 baseline (benchmarks/bench_train.py). Run from the repository root:
#
#     bash benchmarks/device_check.sh            # results also go to $OUT (or /tmp)
#
# Where the machine's numba-cuda cannot import its numpy (numba-cuda 0.30.4 with
# numpy 2.5 on the H200 image: np.row_stack is gone), put a numpy 2.3.x wheel for
# that Python under .whl/ (ignored by git) and carry it; it is installed with
# --target and put first on PYTHONPATH:
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp --platform manylinux_2_28_x86_64 -d .whl numpy==2.3.5
set -u
out=${OUT:-/tmp}
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$(pwd)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
# fails here, not halfway, if the carried numpy breaks scipy or h5py of the image
python3 -c "import numpy, numba, eventsim; from numba import cuda; print('numpy', \
numpy.__version__, 'numba', numba.__version__, 'cuda available', cuda.is_available())" || exit 1
# the three steps take at most 540 s, inside the device tool's 600 s per command
timeout 270 python3 benchmarks/gpu_check.py 2>&1 | tee "$out/gpu_check.txt"
status=${PIPESTATUS[0]}
timeout 120 python3 examples/train_mnist.py --device cuda --epochs 1 --no-progress \
    --out "$out/train_cuda" 2>&1 | tee "$out/train_cuda.txt"
timeout 150 python3 benchmarks/bench_train.py 2>&1 | tee "$out/bench_train.txt"
exit "$status"
