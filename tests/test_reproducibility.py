"""The same bits whatever CPU-specific code NumPy and its BLAS pick, and whatever
else is in the batch.

NumPy dispatches ufuncs such as exp to SIMD versions chosen for the CPU
(AVX-512 on one machine, AVX2 on another) and OpenBLAS picks a matrix-product
kernel per CPU model; both round differently. Before the readout products and
the cross-entropy moved into eventsim's own fixed-order kernels, the same seed
ended its first MNIST epoch at 90.18 % test accuracy on an AVX-512 Xeon and at
90.49 % on an AVX2 EPYC. Here the CPU is varied the way those libraries let a
process choose: each run is a fresh process with NumPy's dispatched SIMD
targets switched off, OpenBLAS told to use generic kernels, or one numba
thread. With the code before, on an AVX-512 machine, each of the first two
changed the weights of the short run below.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eventsim as es
import naive
from eventsim._layer import matmul

ROOT = Path(__file__).resolve().parents[1]

TRAIN = """
import hashlib
import eventsim as es
from eventsim._train import Dataset, TrainConfig, Trainer
data = es.mnist()
dataset = Dataset(es.latency_encode(data.train_images[:600]), data.train_labels[:600],
                  es.latency_encode(data.test_images[:200]), data.test_labels[:200])
config = TrainConfig(hidden=(40,), epochs=2, batch_size=50, seed=5, lr=3e-3,
                     lr_schedule="cosine", eval_batch_size=200)
trainer = Trainer(config, dataset, {out!r}, progress=False)
trainer.fit()
weights = b"".join(w.tobytes() for w in trainer.net.weights)
print(hashlib.sha256(weights).hexdigest(), repr(trainer.history[-1]["train_loss"]),
      repr(trainer.history[-1]["test_loss"]))
"""


def _dispatched_simd_targets() -> str:
    """NumPy's SIMD dispatch targets that this CPU runs (names differ between versions)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        return ""
    return " ".join(t for t in __cpu_dispatch__ if __cpu_features__.get(t))


def _train(tmp_path, name, **env):
    out = tmp_path / name
    run = subprocess.run([sys.executable, "-c", TRAIN.format(out=str(out))], cwd=ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.splitlines()[-1]   # the lines before it are progress, with timings


def test_training_does_not_depend_on_cpu_specific_library_code(tmp_path):
    reference = _train(tmp_path, "default")
    variants = {
        "numpy baseline SIMD only": dict(NPY_DISABLE_CPU_FEATURES=_dispatched_simd_targets()),
        "generic OpenBLAS kernels": dict(OPENBLAS_CORETYPE="Prescott"),
        "one numba thread": dict(NUMBA_NUM_THREADS="1"),
    }
    for name, env in variants.items():
        assert _train(tmp_path, name.replace(" ", "_"), **env) == reference, name


@pytest.mark.parametrize("shape", [(30, 80, 7), (7, 3, 50), (1, 400, 10), (0, 5, 3), (4, 0, 6)])
def test_readout_products_sum_in_a_fixed_order(shape):
    rows, inner, cols = shape
    rng = np.random.default_rng(rows + inner + cols)
    x = rng.normal(size=(rows, inner)) * 10.0 ** rng.integers(-8, 8, size=(rows, inner))
    y = rng.normal(size=(inner, cols))
    assert np.array_equal(matmul(x, y), naive.matmul(x, y))
    assert np.array_equal(matmul(y.T, x.T), naive.matmul(y.T, x.T))   # strided inputs


def test_a_sample_gives_the_same_bits_alone_and_in_a_batch():
    """Each output is summed in a fixed order, so a sample's v_out does not depend
    on the other samples of its batch (a BLAS takes other kernels for other
    shapes: one row is a matrix-vector product)."""
    rng = np.random.default_rng(8)
    net = es.Network([60, 150, 10], es.LIF(0.8, 0.4), seed=4, init_mean=0.1, init_std=0.4)
    x = np.where(rng.random((40, 60)) < 0.7, rng.uniform(0.0, 1.0, (40, 60)), np.inf)
    batch = net.forward(x)
    assert (batch.spike_counts[0].sum(axis=0) > 0).mean() > 0.5   # the readout sees spikes
    for s in range(x.shape[0]):
        alone = net.forward(x[s:s + 1])
        assert np.array_equal(alone.v_out[0], batch.v_out[s])
        assert np.array_equal(alone.v_hidden[0][0], batch.v_hidden[0][s])
