"""benchmarks/bench_train.py's dense Algorithm 1 baseline computes what eventsim does,
whether the batch is processed in one piece or in groups of samples."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import eventsim as es

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))    # for its `_timing` import
    try:
        spec = importlib.util.spec_from_file_location("bench_train", BENCH / "bench_train.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_dense_algorithm1_matches_eventsim_in_any_grouping(bench):
    x, _ = bench.load_batch(12, offset=500)
    x[3] = np.inf                                  # a sample without input spikes
    net = es.Network([784, 40, 10], es.LIF(0.8, 0.4), seed=3)
    res = net.forward(x)
    counts = res.spike_counts[0]
    n_max = int(counts.max()) + 1
    whole = bench.dense_forward_algorithm1(x, *net.weights, n_max=n_max, group_rows=10**9)
    for group_rows in (1, 40, 200):       # one sample per group, one, five
        grouped = bench.dense_forward_algorithm1(x, *net.weights, n_max=n_max,
                                                 group_rows=group_rows)
        np.testing.assert_array_equal(grouped["counts"], whole["counts"])
        np.testing.assert_allclose(grouped["v_out"], whole["v_out"], rtol=0, atol=1e-13)
    np.testing.assert_array_equal(whole["counts"], counts)
    assert counts.max() >= 2 and whole["at_limit"] == 0
    np.testing.assert_allclose(whole["v_out"], res.v_out, rtol=0, atol=1e-12)
    t_dense = 0.8 * np.log(whole["z"][:, :, :n_max - 1])
    fired = np.isfinite(t_dense)
    np.testing.assert_allclose(t_dense[fired], res._layers[0].out_t[:, :, :n_max - 1][fired],
                               rtol=0, atol=1e-13)


def test_rewritten_line8_equals_algorithm1(bench):
    x, _ = bench.load_batch(12, offset=900)
    x[5] = np.inf
    net = es.Network([784, 40, 10], es.LIF(0.8, 0.4), seed=5)
    n_max = int(net.forward(x).spike_counts[0].max()) + 1
    for group_rows in (40, 10**9):
        fast = bench.dense_forward_rewritten(x, *net.weights, n_max=n_max, group_rows=group_rows)
        plain = bench.dense_forward_algorithm1(x, *net.weights, n_max=n_max)
        np.testing.assert_array_equal(fast["counts"], plain["counts"])
        assert plain["counts"].max() >= 2
        np.testing.assert_allclose(fast["v_out"], plain["v_out"], rtol=0, atol=1e-12)
        fired = np.isfinite(plain["z"])
        np.testing.assert_array_equal(np.isfinite(fast["z"]), fired)
        np.testing.assert_allclose(fast["z"][fired], plain["z"][fired], rtol=1e-13, atol=0)
