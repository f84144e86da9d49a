"""Behaviour of eventsim.simulate_layer / eventsim.membrane against independent references.

References: ``naive`` (SRM formula, hand-derived single-input solutions),
``validation.ode`` (solve_ivp integration, plain-loop eq. 19).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import eventsim as es
from eventsim import _layer
import naive
from strategies import ALL_P, few, layers, lif_of
from validation.cases import TAUS
from validation.ode import closed_form_layer, ode_simulate_layer


def sim(case, lif=None, **kw):
    return es.simulate_layer(case.times, case.ids, case.weights, lif or lif_of(case),
                             t_end=kw.pop("t_end", case.t_end), **kw)


def assert_same_trains(a: es.Spikes, b: es.Spikes, tol: float):
    """Same neurons, same spike counts per neuron, times within tol."""
    assert a.n_neurons == b.n_neurons
    np.testing.assert_array_equal(a.counts(), b.counts())
    for j in range(a.n_neurons):
        np.testing.assert_allclose(a.of(j), b.of(j), rtol=0, atol=tol)


def assert_trains_equal_arrays(out: es.Spikes, ref_t, ref_j, tol: float):
    ref_t = np.asarray(ref_t)
    ref_j = np.asarray(ref_j)
    counts = np.bincount(ref_j, minlength=out.n_neurons)
    np.testing.assert_array_equal(out.counts(), counts)
    for j in range(out.n_neurons):
        np.testing.assert_allclose(out.of(j), ref_t[ref_j == j], rtol=0, atol=tol)


# ----------------------------------------------------------------------------- output format

@given(layers(), st.booleans())
def test_output_well_formed(case, single):
    out = sim(case, single_spike=single)
    assert out.times.dtype == np.float64 and out.ids.dtype == np.int64
    assert out.n_neurons == case.n_out
    assert np.all(out.times >= 0) and np.all(out.times < case.t_end)
    # sorted by (time, id)
    order = np.lexsort((out.ids, out.times))
    np.testing.assert_array_equal(order, np.arange(len(out)))
    assert out.counts().sum() == len(out)
    for j in range(case.n_out):
        tj = out.of(j)
        assert np.all(np.diff(tj) > 0), "spike times of a neuron must strictly increase"
        if single:
            assert tj.size <= 1


# ----------------------------------------------------------------------------- membrane at spikes

@given(layers(), st.booleans())
def test_reset_threshold_and_current_at_spikes(case, single):
    """At each spike: V(ts) == 0 (reset, right-continuous), V(ts^-) == theta, I continuous."""
    out = sim(case, single_spike=single)
    assume(len(out) > 0)
    lif = lif_of(case)
    V, I = es.membrane(case.times, case.ids, case.weights, lif, out, out.times)
    before = np.nextafter(out.times, -np.inf)
    Vb, Ib = es.membrane(case.times, case.ids, case.weights, lif, out, before)
    rows = np.arange(len(out))
    v_at = V[rows, out.ids]
    assert np.all(v_at == 0.0), "V must be exactly 0 right after a spike"
    np.testing.assert_allclose(Vb[rows, out.ids], case.threshold, rtol=0,
                               atol=1e-9 * max(1.0, case.threshold))
    # I is not reset: the engine's I equals the SRM current (which ignores resets)
    fin = case.times < case.t_end
    for s, (ts, j) in enumerate(zip(out.times, out.ids)):
        w = naive.column(case.times[fin], case.ids[fin], case.weights, j)
        i_ref = naive.current(ts, case.times[fin], w, case.tau_i)[0]
        scale = 1.0 + np.abs(w).sum()
        assert abs(I[s, j] - i_ref) <= 1e-11 * scale
        if not np.any(case.times == ts):
            assert abs(I[s, j] - Ib[s, j]) <= 1e-11 * scale
        # left limit by the SRM formula, with the engine's own earlier spikes
        v_left = naive.potential(ts, case.times[fin], w, case.tau_i, case.tau_v,
                                 case.threshold, out.of(j), left=True)[0]
        assert abs(v_left - case.threshold) <= 1e-9 * scale


@given(layers(), st.booleans())
def test_subthreshold_between_spikes_dense(case, single):
    """On a dense grid V <= theta, and es.membrane agrees with the SRM formula.

    In single-spike mode V may exceed theta after the neuron's spike (it keeps
    integrating but cannot fire), so the bound is only checked up to the spike.
    """
    out = sim(case, single_spike=single)
    lif = lif_of(case)
    grid = np.linspace(0.0, case.t_end, 1501)[:-1]
    V, _ = es.membrane(case.times, case.ids, case.weights, lif, out, grid)
    fin = case.times < case.t_end
    for j in range(case.n_out):
        w = naive.column(case.times[fin], case.ids[fin], case.weights, j)
        v_ref = naive.potential(grid, case.times[fin], w, case.tau_i, case.tau_v,
                                case.threshold, out.of(j))
        scale = 1.0 + np.abs(w).sum() + out.of(j).size * case.threshold
        np.testing.assert_allclose(V[:, j], v_ref, rtol=0, atol=1e-9 * scale)
        limit = out.of(j)[0] if (single and out.of(j).size) else np.inf
        mask = grid < limit
        assert np.all(v_ref[mask] <= case.threshold * (1 + 1e-12)), \
            f"neuron {j} is above threshold at t={grid[mask][np.argmax(v_ref[mask])]}"


# ----------------------------------------------------------------------------- invariances

@given(layers(), st.booleans(), st.randoms(use_true_random=False))
def test_input_order_irrelevant(case, single, rnd):
    out = sim(case, single_spike=single)
    perm = np.array(rnd.sample(range(case.times.size), case.times.size), dtype=np.int64)
    out2 = es.simulate_layer(case.times[perm], case.ids[perm], case.weights, lif_of(case),
                             case.t_end, single_spike=single)
    assert out2 == out


@given(layers(), st.booleans(), st.randoms(use_true_random=False))
def test_relabelling_inputs_irrelevant(case, single, rnd):
    """Renaming input neurons (permuting weight rows) changes the order in which tied
    inputs are applied but not the result (up to float summation order)."""
    n_in = case.weights.shape[0]
    new_of_old = np.array(rnd.sample(range(n_in), n_in), dtype=np.int64)
    w2 = np.empty_like(case.weights)
    w2[new_of_old] = case.weights
    out = sim(case, single_spike=single)
    out2 = es.simulate_layer(case.times, new_of_old[case.ids], w2, lif_of(case), case.t_end,
                             single_spike=single)
    assert_same_trains(out, out2, 1e-11)


@given(layers(), st.booleans(), st.data())
def test_simultaneous_inputs_add(case, single, data):
    """Two inputs at the same time (same or different presynaptic neuron) act as one
    input whose weight row is their sum."""
    fin = np.flatnonzero(case.times < case.t_end)
    assume(fin.size >= 1)
    chosen = data.draw(st.lists(st.sampled_from(list(fin)), min_size=1, max_size=5,
                                unique=True))
    n_in = case.weights.shape[0]
    partner = data.draw(st.lists(st.integers(0, n_in - 1), min_size=len(chosen),
                                 max_size=len(chosen)))
    # A: original inputs plus, for each chosen spike k, an extra spike of `partner` at t_k
    t_a = np.concatenate([case.times, case.times[chosen]])
    i_a = np.concatenate([case.ids, np.asarray(partner, dtype=np.int64)])
    # B: each chosen spike k is replaced by a spike of a new input row w[i_k] + w[partner]
    new_rows = case.weights[case.ids[chosen]] + case.weights[partner]
    w_b = np.vstack([case.weights, new_rows])
    i_b = case.ids.copy()
    i_b[chosen] = n_in + np.arange(len(chosen))
    lif = lif_of(case)
    out_a = es.simulate_layer(t_a, i_a, case.weights, lif, case.t_end, single_spike=single)
    out_b = es.simulate_layer(case.times, i_b, w_b, lif, case.t_end, single_spike=single)
    assert_same_trains(out_a, out_b, 1e-10)


@given(layers(), st.booleans(), st.data())
def test_zero_weight_inputs_change_nothing(case, single, data):
    """Extra inputs from zero-weight neurons, including ones at exactly the output spike
    times and at existing input times, split intervals but change nothing."""
    out = sim(case, single_spike=single)
    n_in = case.weights.shape[0]
    n_extra = data.draw(st.integers(1, 4))
    extra_t = [data.draw(st.floats(0.0, case.t_end, exclude_max=True)) for _ in range(n_extra)]
    extra_t += list(out.times[:5]) + list(case.times[:3])
    extra_t = np.asarray(extra_t, dtype=np.float64)
    w2 = np.vstack([case.weights, np.zeros((2, case.n_out))])
    extra_i = n_in + (np.arange(extra_t.size) % 2)
    out2 = es.simulate_layer(np.concatenate([case.times, extra_t]),
                             np.concatenate([case.ids, extra_i]), w2, lif_of(case),
                             case.t_end, single_spike=single)
    assert_same_trains(out, out2, 1e-11)


@given(layers(), st.booleans())
def test_ignored_inputs(case, single):
    """Inputs at or after t_end (and +inf) are ignored, even from a huge-weight input."""
    fin = case.times < case.t_end
    n_in = case.weights.shape[0]
    w2 = np.vstack([case.weights, np.full((1, case.n_out), 1e3)])
    lif = lif_of(case)
    out_ref = es.simulate_layer(case.times[fin], case.ids[fin], case.weights, lif, case.t_end,
                                single_spike=single)
    assert sim(case, single_spike=single) == out_ref
    t2 = np.concatenate([case.times, [case.t_end, case.t_end + 0.5, np.inf]])
    i2 = np.concatenate([case.ids, [n_in, n_in, n_in]])
    out2 = es.simulate_layer(t2, i2, w2, lif, case.t_end, single_spike=single)
    assert out2 == out_ref


@given(layers(thresholds=(1.0,)), layers(thresholds=(1.0,)))
def test_subthreshold_superposition(c1, c2):
    """Without spikes (threshold 1e9) V is linear in the inputs: V(A u B) = V(A) + V(B),
    and it equals the SRM sum. Both input sets use c1's time constants."""
    tau_i, tau_v = c1.tau_i, c1.tau_v
    n_out = min(c1.n_out, c2.n_out)
    n_in = max(c1.weights.shape[0], c2.weights.shape[0])
    w1 = np.zeros((n_in, n_out))
    w2 = np.zeros((n_in, n_out))
    w1[:c1.weights.shape[0]] = c1.weights[:, :n_out]
    w2[:c2.weights.shape[0]] = c2.weights[:, :n_out]
    # same weight matrix for both input sets: inputs of set B use rows shifted by n_in
    w = np.vstack([w1, w2])
    lif = es.LIF(tau_i, tau_v, 1e9)
    t_a, i_a = c1.times, c1.ids
    t_b, i_b = c2.times, c2.ids + n_in
    t_ab, i_ab = np.concatenate([t_a, t_b]), np.concatenate([i_a, i_b])
    grid = np.linspace(0, 1, 301)
    empty = es.Spikes(np.empty(0), np.empty(0, np.int64), n_out)
    for t, i in ((t_a, i_a), (t_b, i_b), (t_ab, i_ab)):
        assert len(es.simulate_layer(t, i, w, lif, 1.0)) == 0
    va, ia = es.membrane(t_a, i_a, w, lif, empty, grid)
    vb, ib = es.membrane(t_b, i_b, w, lif, empty, grid)
    vab, iab = es.membrane(t_ab, i_ab, w, lif, empty, grid)
    scale = 1.0 + np.abs(w).sum()
    np.testing.assert_allclose(vab, va + vb, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(iab, ia + ib, rtol=0, atol=1e-12 * scale)
    for j in range(n_out):
        v_ref = naive.potential(grid, t_ab, naive.column(t_ab, i_ab, w, j), tau_i, tau_v)
        np.testing.assert_allclose(vab[:, j], v_ref, rtol=0, atol=1e-11 * scale)


@given(layers(), st.booleans())
def test_time_shift_invariance(case, single):
    shift = 1e4
    out = sim(case, single_spike=single)
    out2 = es.simulate_layer(case.times + shift, case.ids, case.weights, lif_of(case),
                             case.t_end + shift, single_spike=single)
    np.testing.assert_array_equal(out.counts(), out2.counts())
    np.testing.assert_array_equal(out.ids, out2.ids)
    np.testing.assert_allclose(out2.times - shift, out.times, rtol=0, atol=1e-9)


@given(layers(), st.booleans(), st.sampled_from([0.25, 3.0, 40.0]),
       st.sampled_from([0.5, 7.0]))
def test_time_and_threshold_scaling(case, single, a, c):
    """(tau, t, t_end) -> a * (...), w -> w / a: spike times scale by a.
    (threshold, w) -> c * (...): spike times unchanged (V is linear in w)."""
    out = sim(case, single_spike=single)
    lif_a = es.LIF(case.tau_i * a, case.tau_v * a, case.threshold)
    out_a = es.simulate_layer(case.times * a, case.ids, case.weights / a, lif_a,
                              case.t_end * a, single_spike=single)
    np.testing.assert_array_equal(out.counts(), out_a.counts())
    np.testing.assert_allclose(out_a.times / a, out.times, rtol=0, atol=1e-10)
    lif_c = es.LIF(case.tau_i, case.tau_v, case.threshold * c)
    out_c = es.simulate_layer(case.times, case.ids, case.weights * c, lif_c, case.t_end,
                              single_spike=single)
    assert_same_trains(out, out_c, 1e-10)


@given(layers())
def test_single_spike_is_first_multi_spike(case):
    multi = sim(case)
    single = sim(case, single_spike=True)
    for j in range(case.n_out):
        np.testing.assert_array_equal(single.of(j), multi.of(j)[:1])


@given(layers())
def test_single_spike_keeps_integrating(case):
    """After its one spike the neuron's V resets once and then follows the inputs freely
    (it may exceed the threshold); I is never reset."""
    out = sim(case, single_spike=True)
    assume(len(out) > 0)
    grid = np.linspace(0.0, case.t_end, 401)[:-1]
    V, _ = es.membrane(case.times, case.ids, case.weights, lif_of(case), out, grid)
    fin = case.times < case.t_end
    for j in np.unique(out.ids):
        w = naive.column(case.times[fin], case.ids[fin], case.weights, j)
        v_ref = naive.potential(grid, case.times[fin], w, case.tau_i, case.tau_v,
                                case.threshold, out.of(j))
        np.testing.assert_allclose(V[:, j], v_ref, rtol=0,
                                   atol=1e-9 * (1 + np.abs(w).sum()))


# ----------------------------------------------------------------------------- references

@given(layers(ps=(2.0,)), st.booleans())
def test_p2_closed_form_equals_root(case, single):
    cf = sim(case, single_spike=single, method="closed_form")
    root = sim(case, single_spike=single, method="root")
    auto = sim(case, single_spike=single)
    assert auto == cf
    assert_same_trains(cf, root, 1e-12)


@given(layers(ps=(2.0,)), st.booleans())
def test_p2_engine_equals_eq19_reference(case, single):
    out = sim(case, single_spike=single)
    ref_t, ref_j = closed_form_layer(case.times, case.ids, case.weights, case.tau_i,
                                     case.tau_v, case.threshold, case.t_end, single)
    assert_trains_equal_arrays(out, ref_t, ref_j, 1e-12)


@settings(max_examples=few(10))
@given(layers(max_out=5, max_spikes=25), st.booleans())
def test_engine_equals_ode_reference(case, single):
    out = sim(case, single_spike=single)
    ref_t, ref_j = ode_simulate_layer(case.times, case.ids, case.weights, case.tau_i,
                                      case.tau_v, case.threshold, case.t_end, single)
    assert_trains_equal_arrays(out, ref_t, ref_j, 1e-12)


@pytest.mark.parametrize("p", ALL_P)
@pytest.mark.parametrize("single", [False, True])
def test_engine_equals_ode_reference_fixed(p, single):
    """One fixed, busy layer per p (many spikes per neuron), against solve_ivp."""
    from validation.cases import random_case
    tau_i, tau_v = TAUS[p]
    case = random_case(np.random.default_rng(1234), tau_i, tau_v, n_in=20, n_out=6,
                       n_spikes=50, max_drive=8.0)
    out = sim(case, single_spike=single)
    assert len(out) > (0 if single else 12)
    ref_t, ref_j = ode_simulate_layer(case.times, case.ids, case.weights, tau_i, tau_v,
                                      1.0, 1.0, single)
    assert_trains_equal_arrays(out, ref_t, ref_j, 1e-12)


# ----------------------------------------------------------------------------- hand-derived cases

@pytest.mark.parametrize("w", [5.0, 5.0001, 5.3, 12.0, 60.0])
@pytest.mark.parametrize("method", ["closed_form", "root"])
def test_p2_single_input_all_spikes_by_hand(w, method):
    """p = 2, one input of weight w at t0: V = w tau_i (x - x^2), x = e^{-(t-t0)/tau_i};
    every spike (with the resets) solves a quadratic in x (naive.p2_single_input_spikes).
    Grazing weight 4 theta / tau_i = 5 exactly: touching counts as a spike."""
    lif = es.LIF(0.8, 0.4)
    t0, t_end = 0.1, 2.5
    out = es.simulate_layer([t0], [0], [[w]], lif, t_end, method=method)
    ref = naive.p2_single_input_spikes(w, t0, 0.8, 1.0, t_end)
    assert ref.size >= 1
    np.testing.assert_allclose(out.times, ref, rtol=0, atol=1e-12)


def test_p2_single_input_potential_by_hand():
    lif = es.LIF(0.8, 0.4, threshold=1e6)
    w, t0 = 3.0, 0.2
    t = np.linspace(0, 2, 41)
    empty = es.Spikes(np.empty(0), np.empty(0, np.int64), 1)
    V, I = es.membrane([t0], [0], [[w]], lif, empty, t)
    u = np.maximum(t - t0, 0)
    v_ref = np.where(t >= t0, w * 0.8 * (np.exp(-u / 0.8) - np.exp(-2 * u / 0.8)), 0.0)
    i_ref = np.where(t >= t0, w * np.exp(-u / 0.8), 0.0)
    np.testing.assert_allclose(V[:, 0], v_ref, rtol=0, atol=1e-14)
    np.testing.assert_allclose(I[:, 0], i_ref, rtol=0, atol=1e-14)


@pytest.mark.parametrize("w", [math.e / 0.5 * 1.000001, 6.0, 10.0, 40.0])
@pytest.mark.parametrize("tau", [0.5, 0.9])
def test_p1_single_input_by_hand(w, tau):
    """p = 1: V = w u e^{-u/tau}; the first spike is u = -tau W_0(-theta/(w tau))."""
    w = w * 0.5 / tau
    lif = es.LIF(tau, tau)
    t0 = 0.05
    out = es.simulate_layer([t0], [0], [[w]], lif, 3.0)
    ref = naive.p1_single_input_first_spike(w, t0, tau)
    assert math.isfinite(ref)
    assert abs(out.times[0] - ref) <= 1e-12
    empty = es.Spikes(np.empty(0), np.empty(0, np.int64), 1)
    t = np.linspace(0, 2, 21)
    V, _ = es.membrane([t0], [0], [[w]], es.LIF(tau, tau, 1e6), empty, t)
    u = np.maximum(t - t0, 0)
    np.testing.assert_allclose(V[:, 0], np.where(t >= t0, w * u * np.exp(-u / tau), 0),
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize("eps", [1e-9, -1e-9, 1e-12])
@given(layers(ps=(1.0,)))
def test_p_near_one_matches_p_one(eps, case):
    tau = case.tau_v
    out1 = sim(case, lif=es.LIF(tau, tau, case.threshold))
    out2 = sim(case, lif=es.LIF(tau * (1 + eps), tau, case.threshold))
    assert_same_trains(out1, out2, 1e-7)


# ----------------------------------------------------------------------------- grazing

@pytest.mark.parametrize("p", ALL_P)
@pytest.mark.parametrize("method", ["auto", "root"])
def test_grazing_single_input_flips(p, method):
    """Grazing weight w* = theta / max kappa (max located independently with brentq on
    dV/dt): w*(1 + 1e-9) fires once, w*(1 - 1e-9) never."""
    tau_i, tau_v = TAUS[p]
    t0, t_end = 0.1, 10.0
    vmax, tmax = naive.max_potential_no_reset([t0], [1.0], tau_i, tau_v, t_end)
    assert t0 < tmax < t_end
    w_star = 1.0 / vmax
    lif = es.LIF(tau_i, tau_v)
    up = es.simulate_layer([t0], [0], [[w_star * (1 + 1e-9)]], lif, t_end, method=method)
    down = es.simulate_layer([t0], [0], [[w_star * (1 - 1e-9)]], lif, t_end, method=method)
    assert len(up) == 1 and len(down) == 0
    # the spike is within the (narrow) above-threshold window around the peak
    assert abs(up.times[0] - tmax) < 1e-3


@pytest.mark.parametrize("p", ALL_P)
@pytest.mark.parametrize("delta", [1e-2, 1e-4, 3e-5, 1e-8])
@pytest.mark.parametrize("w2", [0.0, 0.05, -0.05])
def test_grazing_peak_right_after_an_input(p, delta, w2):
    """A second, small input arrives delta before the first input's peak. With w2 ~ 0 the
    grazing peak's interval starts nearly flat (dV/dt ~ delta); with w2 = +-0.05 the peak
    moves just after / sits at the input. Flip at 1 +- 1e-9 must still be exact."""
    tau_i, tau_v = TAUS[p]
    _, t_peak = naive.max_potential_no_reset([0.0], [1.0], tau_i, tau_v, 10.0)
    t2 = t_peak - delta
    t, w = np.array([0.0, t2]), np.array([1.0, w2])
    vmax, tmax = naive.max_potential_no_reset(t, w, tau_i, tau_v, 10.0)
    scale = 1.0 / vmax
    lif = es.LIF(tau_i, tau_v)
    for method in ("auto", "root"):
        up = es.simulate_layer(t, [0, 1], w[:, None] * scale * (1 + 1e-9), lif, 10.0,
                               method=method)
        down = es.simulate_layer(t, [0, 1], w[:, None] * scale * (1 - 1e-9), lif, 10.0,
                                 method=method)
        assert len(down) == 0, method
        assert len(up) == 1, method
        assert abs(up.times[0] - tmax) < 1e-3


@given(layers(max_out=1, max_spikes=15), st.booleans())
def test_grazing_many_inputs_flips(case, single):
    """A neuron with several excitatory inputs in [0, 0.5), scaled so that its highest peak
    exactly touches the threshold (peak found independently, without spikes, by brentq on
    dV/dt of the SRM formula): 1 + 1e-9 times that scale fires exactly once, at that peak;
    1 - 1e-9 times it never fires."""
    fin = case.times < case.t_end
    t, i = case.times[fin] * 0.5, case.ids[fin]
    assume(t.size >= 1)
    t_end = 3.0
    w = np.abs(case.weights[:, :1]) + 0.1  # excitatory: V has no kinked maxima
    vmax, tmax = naive.max_potential_no_reset(t, w[i, 0], case.tau_i, case.tau_v, t_end)
    assert 0.0 < tmax < t_end - 0.1 and vmax > 0
    scale = case.threshold / vmax
    lif = lif_of(case)
    up = es.simulate_layer(t, i, w * scale * (1 + 1e-9), lif, t_end, single_spike=single)
    down = es.simulate_layer(t, i, w * scale * (1 - 1e-9), lif, t_end, single_spike=single)
    assert len(down) == 0
    assert len(up) == 1
    assert abs(up.times[0] - tmax) < 1e-3


# ----------------------------------------------------------------------------- t_end convention

@pytest.mark.parametrize("method", ["closed_form", "root"])
def test_spike_at_t_end_not_counted(method):
    lif = es.LIF(0.8, 0.4)
    out = es.simulate_layer([0.1], [0], [[8.0]], lif, 5.0, method=method)
    ts = out.times[0]
    assert len(es.simulate_layer([0.1], [0], [[8.0]], lif, ts, method=method)) == 0
    later = es.simulate_layer([0.1], [0], [[8.0]], lif, ts + 1e-9, method=method)
    assert len(later) == 1 and abs(later.times[0] - ts) <= 1e-15


def test_empty_and_silent():
    lif = es.LIF()
    out = es.simulate_layer(np.empty(0), np.empty(0, np.int64), np.ones((3, 4)), lif)
    assert len(out) == 0 and out.n_neurons == 4
    np.testing.assert_array_equal(out.counts(), np.zeros(4))
    out = es.simulate_layer([0.5], [1], -np.ones((3, 2)), lif)
    assert len(out) == 0


# ----------------------------------------------------------------------------- errors

def _base():
    return np.array([0.1, 0.2]), np.array([0, 1]), np.ones((2, 3)), es.LIF()


@pytest.mark.parametrize("kwargs, word", [
    (dict(times=[np.nan, 0.2]), "times"),
    (dict(times=[-0.1, 0.2]), "times"),
    (dict(times=[[0.1, 0.2]]), "times"),
    (dict(times=np.array([0.1, 0.2]) + 0j), "times must be real numbers"),
    (dict(ids=[0, 2]), "ids"),
    (dict(ids=[0, -1]), "ids"),
    (dict(ids=[0.0, 1.0]), "ids"),
    (dict(ids=[0.5, 1]), "ids"),
    (dict(ids=[0, 1, 1]), "ids"),
    (dict(weights=np.ones(3)), "weights"),
    (dict(weights=np.ones((2, 3, 1))), "weights"),
    (dict(weights=np.full((2, 3), np.nan)), "weights"),
    (dict(t_end=0.0), "t_end"),
    (dict(t_end=-1.0), "t_end"),
    (dict(t_end=np.inf), "t_end"),
    (dict(t_end=np.nan), "t_end"),
    (dict(t_end="1.0"), r"t_end must be a positive finite number, got '1.0' \(a str"),
    (dict(t_end=True), r"t_end .* \(a bool"),
    (dict(t_end=np.complex128(1.0)), "t_end"),
    (dict(t_end=10**400), r"t_end .*\(too large for float64\)"),
    (dict(method="closed_form"), "closed_form"),
    (dict(method="newton"), "method"),
    (dict(single_spike="yes"), "single_spike"),
    (dict(max_spikes_per_neuron=0), "max_spikes_per_neuron"),
    (dict(max_spikes_per_neuron=2**64), r"max_spikes_per_neuron must be <= 2\*\*62"),
    (dict(lif="lif"), "lif"),
])
def test_bad_input_raises_value_error(kwargs, word):
    times, ids, weights, _ = _base()
    args = dict(times=times, ids=ids, weights=weights, lif=es.LIF(0.5, 0.4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        es.simulate_layer(**args)


@pytest.mark.parametrize("kwargs, word", [
    (dict(tau_i=0.0), "tau_i"), (dict(tau_i=-1.0), "tau_i"), (dict(tau_v=0.0), "tau_v"),
    (dict(tau_v=np.nan), "tau_v"), (dict(threshold=0.0), "threshold"),
    (dict(threshold=-2.0), "threshold"), (dict(tau_i="a"), "tau_i"),
    (dict(tau_i=1e-320), "tau_i=1e-320 is too small"), (dict(tau_v=1e-310), "1/tau_v overflows"),
    (dict(tau_i="0.8"), r"tau_i must be a positive finite number, got '0.8' \(a str"),
    (dict(threshold=b"1"), "threshold"), (dict(tau_v=1 + 0j), "tau_v"),
    (dict(tau_i=np.array("0.8")), "tau_i"),
    (dict(tau_i=10**400), r"tau_i .*\(401 characters\) \(too large for float64\)"),
])
def test_bad_lif_raises_value_error(kwargs, word):
    with pytest.raises(ValueError, match=word):
        es.LIF(**kwargs)


def test_membrane_bad_input():
    times, ids, weights, lif = _base()
    out = es.simulate_layer(times, ids, weights, lif)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="t_eval must be finite"):
            es.membrane(times, ids, weights, lif, out, [0.5, bad])
    with pytest.raises(ValueError, match="t_eval"):
        es.membrane(times, ids, weights, lif, out, [-1.0])
    with pytest.raises(ValueError, match="out"):
        es.membrane(times, ids, weights, lif, (np.empty(0), np.empty(0)), [0.5])
    with pytest.raises(ValueError, match="out"):
        es.membrane(times, ids, weights, lif, es.Spikes(np.empty(0), np.empty(0, np.int64), 7),
                    [0.5])


@pytest.mark.parametrize("times, ids, n_neurons, word", [
    ([0.1, np.nan], [0, 1], 2, "finite, found nan"),
    ([0.1, np.inf], [0, 1], 2, "finite"),
    ([-0.1, 0.2], [0, 1], 2, ">= 0"),
    ([0.1, 0.2], [0, 2], 2, r"ids must lie in \[0, 2\)"),
    ([0.1, 0.2], [0, -1], 2, "ids must lie"),
    ([0.1, 0.2], [0.0, 1.0], 2, "integer dtype"),
    ([0.1, 0.2], [0], 2, "one entry per spike"),
    ([0.1, 0.2], [0, 1], -1, "n_neurons"),
    ([0.1, 0.2], [0, 1], 2.0, "n_neurons"),
    ([0.1, 0.2], [0, 1], 10**30, r"n_neurons must be < 2\*\*63"),
    ([0.1], np.array([2**63 + 5], np.uint64), 2,
     r"ids must lie in \[0, 2\) .* found 9223372036854775813"),
])
def test_spikes_rejects_bad_fields(times, ids, n_neurons, word):
    with pytest.raises(ValueError, match=word):
        es.Spikes(np.asarray(times), np.asarray(ids), n_neurons)


def test_spikes_sorts_by_time_then_id():
    spikes = es.Spikes(np.array([0.5, 0.1, 0.5, 0.3]), np.array([2, 1, 0, 2]), 3)
    np.testing.assert_array_equal(spikes.times, [0.1, 0.3, 0.5, 0.5])
    np.testing.assert_array_equal(spikes.ids, [1, 2, 0, 2])
    np.testing.assert_array_equal(spikes.of(2), [0.3, 0.5])
    np.testing.assert_array_equal(spikes.of(np.int64(1)), [0.1])
    for bad in (3, -1, 1.0):
        with pytest.raises(ValueError, match="neuron must be"):
            spikes.of(bad)
    assert spikes.ids.dtype == np.int64 and spikes.times.dtype == np.float64
    # membrane() with the unsorted train gives what it gives with the sorted one
    times, ids, weights = np.array([0.1, 0.2]), np.array([0, 1]), np.full((2, 3), 20.0)
    lif = es.LIF()
    out = es.simulate_layer(times, ids, weights, lif)
    assert len(out) > 6
    shuffled = np.random.default_rng(0).permutation(len(out))
    again = es.Spikes(out.times[shuffled], out.ids[shuffled], out.n_neurons)
    assert again == out
    t_eval = np.linspace(0.0, 1.0, 7)
    for a, b in zip(es.membrane(times, ids, weights, lif, again, t_eval),
                    es.membrane(times, ids, weights, lif, out, t_eval)):
        np.testing.assert_array_equal(a, b)


def test_spike_limit():
    lif = es.LIF(0.8, 0.4)
    times, ids, w = [0.0], [0], [[200.0]]
    n = len(es.simulate_layer(times, ids, w, lif, 1.0))
    assert n > 5
    assert len(es.simulate_layer(times, ids, w, lif, 1.0, max_spikes_per_neuron=n)) == n
    with pytest.raises(es.SpikeLimitError, match="max_spikes_per_neuron"):
        es.simulate_layer(times, ids, w, lif, 1.0, max_spikes_per_neuron=n - 1)
    # single-spike mode never hits the limit
    assert len(es.simulate_layer(times, ids, w, lif, 1.0, single_spike=True,
                                 max_spikes_per_neuron=1)) == 1


# ----------------------------------------------------------------------------- network

@settings(max_examples=few(20))
@given(layers(), st.booleans(), st.sampled_from(["dense", "sparse"]),
       st.sampled_from([0.0, 0.05]))
def test_network_without_recurrence_is_a_layer(case, single, kind, delay):
    import scipy.sparse as sp
    n = case.n_out
    w_rec = np.zeros((n, n)) if kind == "dense" else sp.csr_matrix((n, n))
    lif = lif_of(case)
    net = es.simulate_network(case.times, case.ids, case.weights, w_rec, lif, case.t_end,
                              delay=delay, single_spike=single)
    layer = sim(case, single_spike=single)
    np.testing.assert_array_equal(net.ids, layer.ids)
    np.testing.assert_allclose(net.times, layer.times, rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_spike_list_bookkeeping_matches_python_sort(seed, ties):
    """dense_to_lists / merge_spikes give per-sample lists sorted by (time, id),
    as Python's sorted() does; ties are common when times come from a small set."""
    from eventsim import _layer

    rng = np.random.default_rng(seed)
    n_samples, n_in, cap = 3, 7, 4
    draw = (lambda size: rng.choice([0.0, 0.25, 0.5, 1.0, np.inf], size)) if ties else rng.random
    x = draw((n_samples, n_in))
    times, ids, ptr = _layer.dense_to_lists(x, 1.0)
    for s in range(n_samples):
        want = sorted((x[s, i], i) for i in range(n_in) if x[s, i] < 1.0)
        got = list(zip(times[ptr[s]:ptr[s + 1]], ids[ptr[s]:ptr[s + 1]]))
        assert got == want

    counts = rng.integers(0, cap + 1, (n_samples, n_in))
    out_t = np.sort(draw((n_samples, n_in, cap)), axis=2)  # a neuron's own train is sorted
    times, ids, ptr, src_n = _layer.merge_spikes(out_t, counts)
    for s in range(n_samples):
        want = sorted((out_t[s, j, n], j, n) for j in range(n_in) for n in range(counts[s, j]))
        got = list(zip(times[ptr[s]:ptr[s + 1]], ids[ptr[s]:ptr[s + 1]], src_n[ptr[s]:ptr[s + 1]]))
        assert got == want


def test_simulate_layer_takes_sparse_weights():
    """A scipy.sparse weight matrix gives what its dense copy gives."""
    import scipy.sparse

    rng = np.random.default_rng(4)
    weights = scipy.sparse.random(30, 6, density=0.3, random_state=4, format="csr") * 8.0
    times, ids = rng.uniform(0.0, 1.0, 40), rng.integers(0, 30, 40)
    lif = es.LIF(0.8, 0.4)
    out = es.simulate_layer(times, ids, weights, lif)
    assert len(out) > 0 and out == es.simulate_layer(times, ids, weights.toarray(), lif)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), levels=st.sampled_from([0, 2, 7, 256, 10**9]),
       clustered=st.booleans(), tiny=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_stable_argsort_is_numpys_stable_argsort(n, levels, clustered, tiny, seed):
    """The bucket sort behind merge_spikes and dense_to_lists orders like a stable
    mergesort: ties (latency codes have 256 levels), clustered times with one
    outlier (one big bucket), all-equal, subnormal and NaN times."""
    rng = np.random.default_rng(seed)
    t = rng.random(n)
    if levels:
        t = np.floor(t * levels) / levels
    if clustered and n:
        t = 0.5 + t * 1e-9
        t[rng.integers(n)] = 7.0
    if tiny:
        t = t * 5e-324 * 3
    if n and seed % 7 == 0:          # a NaN time, from an overflowed state, goes last
        t[rng.integers(n)] = np.nan
    np.testing.assert_array_equal(_layer.stable_argsort(t), np.argsort(t, kind="mergesort"))
