"""eventsim.simulate_network against the ODE network reference and layer compositions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import eventsim as es
from strategies import few, layers, lif_of
from validation import mp_reference
from validation.ode import ode_simulate_network


def _recurrent(seed, n, tau_i, gain):
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, (n, n)) / np.sqrt(n) / tau_i * gain
    w[rng.random((n, n)) < 0.3] = 0.0
    return w


@settings(max_examples=few(12))
@given(layers(max_out=6, max_spikes=25), st.integers(0, 2**32 - 1),
       st.sampled_from([0.5, 2.0, 4.0]), st.sampled_from([0.0, 0.01, 0.2]), st.booleans(),
       st.sampled_from(["dense", "sparse"]))
def test_network_equals_ode_reference(case, seed, gain, delay, single, kind):
    n = case.n_out
    w_rec = _recurrent(seed, n, case.tau_i, gain)
    w_arg = w_rec if kind == "dense" else sp.csr_matrix(w_rec)
    try:
        out = es.simulate_network(case.times, case.ids, case.weights, w_arg, lif_of(case),
                                  case.t_end, delay=delay, single_spike=single,
                                  max_spikes_per_neuron=100)
    except es.SpikeLimitError:
        return
    ref_t, ref_j = ode_simulate_network(case.times, case.ids, case.weights, w_rec, case.tau_i,
                                        case.tau_v, case.threshold, case.t_end, delay, single)
    np.testing.assert_array_equal(out.counts(), np.bincount(ref_j, minlength=n))
    for j in range(n):
        np.testing.assert_allclose(out.of(j), ref_t[ref_j == j], rtol=0, atol=1e-12)


@given(layers(max_out=6), st.booleans(), st.sampled_from([0.0, 0.03]))
def test_feedforward_block_network_equals_two_layers(case, single, delay):
    """w_rec = [[0, W_AB], [0, 0]]: population B only listens to A. The network must equal
    simulate_layer for A, then simulate_layer for B driven by A's spikes (+ delay)."""
    rng = np.random.default_rng(int(case.weights.shape[0] * 1000 + case.n_out))
    n_a = case.n_out
    n_b = 3
    w_ab = rng.normal(1.0, 2.0, (n_a, n_b)) / case.tau_i
    n = n_a + n_b
    w_in = np.zeros((case.weights.shape[0], n))
    w_in[:, :n_a] = case.weights
    w_rec = np.zeros((n, n))
    w_rec[:n_a, n_a:] = w_ab
    lif = lif_of(case)
    net = es.simulate_network(case.times, case.ids, w_in, w_rec, lif, case.t_end, delay=delay,
                              single_spike=single)
    a = es.simulate_layer(case.times, case.ids, case.weights, lif, case.t_end,
                          single_spike=single)
    b = es.simulate_layer(a.times + delay, a.ids, w_ab, lif, case.t_end, single_spike=single)
    np.testing.assert_array_equal(net.counts(), np.concatenate([a.counts(), b.counts()]))
    for j in range(n_a):
        np.testing.assert_allclose(net.of(j), a.of(j), rtol=0, atol=1e-12)
    for j in range(n_b):
        np.testing.assert_allclose(net.of(n_a + j), b.of(j), rtol=0, atol=1e-10)


@given(layers(max_out=6), st.booleans())
def test_delay_beyond_t_end_is_a_layer(case, single):
    w_rec = _recurrent(3, case.n_out, case.tau_i, 4.0)
    net = es.simulate_network(case.times, case.ids, case.weights, w_rec, lif_of(case),
                              case.t_end, delay=case.t_end, single_spike=single)
    layer = es.simulate_layer(case.times, case.ids, case.weights, lif_of(case), case.t_end,
                              single_spike=single)
    np.testing.assert_array_equal(net.ids, layer.ids)
    np.testing.assert_allclose(net.times, layer.times, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kwargs, word", [
    (dict(w_rec=np.zeros((3, 2))), "w_rec"),
    (dict(w_rec=np.zeros(3)), "w_rec"),
    (dict(w_in=np.ones(3)), "w_in"),
    (dict(w_in=np.ones((2, 3)) + 5j), "w_in must be real numbers, got dtype complex128"),
    (dict(w_in=np.ones((2, 3), bool)), "w_in must be real numbers, got dtype bool"),
    (dict(w_in=sp.csr_matrix(np.ones((2, 3)) + 1j)), "w_in must be real numbers"),
    (dict(w_in=sp.csr_matrix(np.ones((2, 3)))[:, :2]), "w_rec must have shape"),
    (dict(w_in=np.full((2, 3), np.inf)), "w_in must be finite"),
    (dict(w_rec=np.zeros((3, 3), object)), "w_rec must be real numbers, got dtype object"),
    (dict(w_rec=sp.csr_matrix(np.full((3, 3), np.nan))), "w_rec must be finite"),
    (dict(w_rec=np.full((3, 3), "0")), "w_rec must be real numbers"),
    (dict(delay=-0.1), "delay"),
    (dict(delay=np.nan), "delay"),
    (dict(delay="0.1"), r"delay must be a finite number >= 0, got '0.1' \(a str"),
    (dict(delay=True), r"delay .* \(a bool"),
    (dict(delay=10**400), r"delay .*\(too large for float64\)"),
    (dict(t_end=0.0), "t_end"),
    (dict(ids=[0, 5]), "ids"),
    (dict(times=[np.nan, 0.1]), "times"),
])
def test_network_bad_input(kwargs, word):
    args = dict(times=[0.1, 0.2], ids=[0, 1], w_in=np.ones((2, 3)), w_rec=np.zeros((3, 3)),
                lif=es.LIF(), t_end=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        es.simulate_network(**args)


@pytest.mark.parametrize("t0", [0.1, 0.123456789, 0.3])
def test_simultaneous_crossings_fire_together(t0):
    """Two neurons with the same input cross threshold at the same instant t*;
    neuron 0 inhibits neuron 1 with no delay. V is continuous, so the
    inhibition arriving at t* cannot undo neuron 1's crossing at t*: both fire
    at t* (the layer's spike time), whichever of the two carries the lower id."""
    lif = es.LIF(0.5, 0.5)
    w_in = np.array([[20.0, 20.0]])
    first = es.simulate_layer([t0], [0], w_in[:, :1], lif, t_end=3.0).times[0]
    for inhibitor in (0, 1):
        w_rec = np.zeros((2, 2))
        w_rec[inhibitor, 1 - inhibitor] = -50.0
        out = es.simulate_network([t0], [0], w_in, w_rec, lif, t_end=3.0, delay=0.0)
        assert out.of(1 - inhibitor)[0] == first and out.of(inhibitor)[0] == first
        assert out.counts()[1 - inhibitor] == 1 and out.counts()[inhibitor] > 1


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_equal_neurons_stay_equal(delay):
    """Three equal neurons (same inputs, all-to-all inhibition, equal self-connections)
    cross together every time, so each receives the same weights at the same instants,
    in an order that depends on who fired first. Floating-point addition is not
    associative: added in event order, their currents drifted an ulp apart (spike
    times an ulp apart with the delay), and with delay 0 the first to cross then
    silenced the others (5 + 2 + 2 spikes instead of 3 + 3 + 3, the 40-digit
    reference's count). Each neuron's simultaneous arrivals are summed in sorted order."""
    w_rec = np.full((3, 3), -3.0)
    np.fill_diagonal(w_rec, 0.35)
    out = es.simulate_network([0.05, 0.2, 0.45], [0, 0, 0], np.full((1, 3), 9.0), w_rec,
                              es.LIF(2.0, 0.1), t_end=1.5, delay=delay)
    assert out.counts().min() >= 2
    for j in (1, 2):
        np.testing.assert_array_equal(out.of(j), out.of(0))


@pytest.mark.parametrize("gain", [1e3, 1e5, 1e8])
def test_simultaneous_inputs_are_added_before_any_crossing(gain):
    """Inputs at one instant act together: an excitatory and a stronger inhibitory
    input at t2, a few ulp before the neuron would cross, must not let it fire
    in between, whatever their ids (simulate_layer and the 40-digit reference
    give no spike)."""
    lif = es.LIF(0.5, 0.5)
    crossing = es.simulate_layer([0.1], [0], np.array([[20.0]]), lif, t_end=1.0).times[0]
    for k in (1, 2, 3, 5, 8, 13, 100):
        t2 = crossing - k * np.spacing(crossing)
        times, ids = [0.1, t2, t2], [0, 1, 2]
        for w in ([[20.0], [gain], [-2 * gain]], [[20.0], [-2 * gain], [gain]]):
            w = np.array(w)
            out = es.simulate_network(times, ids, w, np.zeros((1, 1)), lif, t_end=t2 + 0.01)
            assert len(out) == 0
            assert out == es.simulate_layer(times, ids, w, lif, t_end=t2 + 0.01)
    r, _ = mp_reference.neuron([0.1, t2, t2], [20.0, gain, -2 * gain], 0.5, 0.5, t_end=t2 + 0.01)
    assert len(r) == 0


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_weights_are_not_modified(fmt):
    """The caller's matrices keep their explicit zeros and their index order."""
    w_in = sp.csr_matrix((np.array([1.0, 0.0, 6.0]), np.array([2, 1, 0]), np.array([0, 3, 3])),
                         shape=(2, 3)).asformat(fmt)
    w_rec = sp.csr_matrix((np.array([0.0, -2.0]), np.array([2, 1]), np.array([0, 2, 2, 2])),
                          shape=(3, 3)).asformat(fmt)
    before = [(m.nnz, m.data.copy(), m.toarray()) for m in (w_in, w_rec)]
    index_before = [(m.indices.copy() if fmt != "coo" else m.col.copy()) for m in (w_in, w_rec)]
    out = es.simulate_network([0.1], [0], w_in, w_rec, es.LIF(0.8, 0.4), 1.0)
    assert out == es.simulate_network([0.1], [0], w_in.toarray(), w_rec.toarray(),
                                      es.LIF(0.8, 0.4), 1.0)
    assert len(out) > 0
    for m, (nnz, data, dense), index in zip((w_in, w_rec), before, index_before):
        assert m.nnz == nnz
        np.testing.assert_array_equal(m.data, data)
        np.testing.assert_array_equal(m.indices if fmt != "coo" else m.col, index)
        np.testing.assert_array_equal(m.toarray(), dense)
