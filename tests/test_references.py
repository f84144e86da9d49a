"""The independent references themselves (validation.ode, naive) agree with each other
and with hand-derived solutions, so that engine-vs-reference tests mean something."""

from __future__ import annotations

import math

import numpy as np
import pytest

import naive
from validation.cases import TAUS, random_case
from validation.ode import closed_form_layer, ode_membrane, ode_simulate_layer


@pytest.mark.parametrize("w", [5.0001, 5.3, 12.0, 60.0])
def test_references_match_p2_hand_solution(w):
    t0, t_end = 0.1, 2.5
    ref = naive.p2_single_input_spikes(w, t0, 0.8, 1.0, t_end)
    cf_t, _ = closed_form_layer([t0], [0], [[w]], 0.8, 0.4, 1.0, t_end)
    np.testing.assert_allclose(cf_t, ref, rtol=0, atol=1e-12)
    ode_t, _ = ode_simulate_layer([t0], [0], [[w]], 0.8, 0.4, 1.0, t_end)
    np.testing.assert_allclose(ode_t, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("p", [2.0, 0.5, 3.7])
def test_ode_reference_finds_grazing_spike(p):
    """An excursion 1e-8 above threshold (window ~1e-4 wide, far below one solver step)
    is found; 1e-8 below, nothing."""
    tau_i, tau_v = TAUS[p]
    vmax, tmax = naive.max_potential_no_reset([0.1], [1.0], tau_i, tau_v, 5.0)
    w = 1.0 / vmax
    up, _ = ode_simulate_layer([0.1], [0], [[w * (1 + 1e-8)]], tau_i, tau_v, 1.0, 5.0)
    down, _ = ode_simulate_layer([0.1], [0], [[w * (1 - 1e-8)]], tau_i, tau_v, 1.0, 5.0)
    assert up.size == 1 and down.size == 0
    assert abs(up[0] - tmax) < 1e-3


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_ode_membrane_matches_srm(p):
    tau_i, tau_v = TAUS[p]
    case = random_case(np.random.default_rng(7), tau_i, tau_v, n_in=8, n_out=3, n_spikes=20)
    grid = np.linspace(0.0, 1.0, 201)
    st, sj, V, I = ode_membrane(case.times, case.ids, case.weights, tau_i, tau_v, 1.0, 1.0,
                                t_eval=grid)
    assert st.size >= 3
    fin = case.times < 1.0
    for j in range(case.n_out):
        w = naive.column(case.times[fin], case.ids[fin], case.weights, j)
        np.testing.assert_allclose(V[:, j], naive.potential(grid, case.times[fin], w, tau_i,
                                                            tau_v, 1.0, st[sj == j]),
                                   rtol=0, atol=1e-11)
        np.testing.assert_allclose(I[:, j], naive.current(grid, case.times[fin], w, tau_i),
                                   rtol=0, atol=1e-11)
    # V == 0 at each spike (right-continuous), V(ts^-) == theta
    _, _, Vs, _ = ode_membrane(case.times, case.ids, case.weights, tau_i, tau_v, 1.0, 1.0,
                               t_eval=st)
    assert np.all(np.abs(Vs[np.arange(st.size), sj]) < 1e-12)


@pytest.mark.parametrize("single", [False, True])
def test_ode_and_eq19_and_grid_references_agree(single):
    case = random_case(np.random.default_rng(11), 0.8, 0.4, n_in=10, n_out=4, n_spikes=30)
    o_t, o_j = ode_simulate_layer(case.times, case.ids, case.weights, 0.8, 0.4, 1.0, 1.0, single)
    c_t, c_j = closed_form_layer(case.times, case.ids, case.weights, 0.8, 0.4, 1.0, 1.0, single)
    np.testing.assert_array_equal(o_j, c_j)
    np.testing.assert_allclose(o_t, c_t, rtol=0, atol=1e-12)
    fin = case.times < 1.0
    for j in range(case.n_out):
        w = naive.column(case.times[fin], case.ids[fin], case.weights, j)
        g = naive.grid_spikes(case.times[fin], w, 0.8, 0.4, 1.0, 1.0, single_spike=single)
        np.testing.assert_allclose(g, o_t[o_j == j], rtol=0, atol=1e-9)


def test_closed_form_layer_rejects_other_p():
    with pytest.raises(ValueError, match="tau_i == 2 tau_v"):
        closed_form_layer([0.1], [0], [[1.0]], 0.5, 0.5)


def test_p1_lambert_solution_matches_ode():
    w, tau = 7.0, 0.5
    ode_t, _ = ode_simulate_layer([0.05], [0], [[w]], tau, tau, 1.0, 3.0)
    assert abs(ode_t[0] - naive.p1_single_input_first_spike(w, 0.05, tau)) < 1e-10
    assert math.isinf(naive.p1_single_input_first_spike(math.e / tau * 0.999, 0.0, tau))
