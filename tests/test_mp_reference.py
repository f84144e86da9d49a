"""Engine and exact gradients against the 40-digit mpmath references
(validation.mp_reference), and those references against hand solutions."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import scipy.sparse as sp

import eventsim as es
import naive
from validation import mp_check
from validation import mp_reference as ref
from validation.compare import spike_train_diff


@pytest.mark.parametrize("w", [5.0001, 12.0, 60.0])
def test_mp_neuron_matches_p2_hand_solution(w):
    expected = naive.p2_single_input_spikes(w, 0.1, 0.8, 1.0, 2.5)
    got, _ = ref.neuron([0.1], [w], 0.8, 0.4, t_end=2.5)
    np.testing.assert_allclose(np.array(got, float), expected, rtol=0, atol=1e-13)


def test_mp_neuron_matches_p1_lambert_solution():
    expected = naive.p1_single_input_first_spike(7.0, 0.2, 0.5)
    got, _ = ref.neuron([0.2], [7.0], 0.5, 0.5, t_end=5.0, single_spike=True)
    assert len(got) == 1 and abs(float(got[0]) - expected) < 1e-13


def test_mp_neuron_final_potential_matches_srm_formula():
    times, weights = [0.05, 0.3, 0.31, 0.7], [9.0, -2.0, 6.0, 4.0]
    spikes, v_end = ref.neuron(times, weights, 0.8, 0.4, t_end=1.0)
    assert len(spikes) >= 2
    v_srm = naive.potential(1.0, times, weights, 0.8, 0.4, own_spikes=np.array(spikes, float))
    assert abs(float(v_end) - v_srm[0]) < 1e-13


def test_mp_reference_keeps_its_digits_near_p1():
    """At p = 1 + 2e-30 the two-exponential form cancels 30 digits; with the extra
    working digits the spike times and V(t_end) still agree with the p = 1
    formula to the size of the physical difference (~1e-30)."""
    with mp.workdps(60):
        tau_i = mp.mpf("0.5") + mp.mpf("1e-30")
    assert ref.working_digits(tau_i, 0.5) >= ref.DIGITS + 30
    near, v_near = ref.neuron([0.1, 0.3], [9.0, 4.0], tau_i, 0.5, t_end=2.0)
    exact, v_exact = ref.neuron([0.1, 0.3], [9.0, 4.0], 0.5, 0.5, t_end=2.0)
    assert len(near) == len(exact) >= 2
    assert max(abs(a - b) for a, b in zip(near, exact)) < 1e-25
    assert abs(v_near - v_exact) < 1e-25


def test_mp_kappa_peak_is_the_maximum():
    peak = float(ref.kappa_peak(0.8, 0.4))
    s = np.linspace(0.0, 5.0, 100001)
    assert peak >= float(naive.kappa(s, 0.8, 0.4).max()) > peak - 1e-9


@pytest.mark.parametrize("tau_v", [1.0, 1e2, 1e4, 1e5])
@pytest.mark.parametrize("method", ["closed_form", "root"])
def test_slow_time_constants_keep_full_precision(tau_v, method):
    """With tau >> the time between spikes, x = e^{-s/tau_i} of eq. 19 is close to
    1 and s = -tau_i ln(x) would keep only the digits of 1 - x that x holds
    (errors ~ eps tau: 4e-11 at tau_v = 1e5); both methods must stay within a
    few ulp of the 40-digit spike times."""
    import eventsim as es

    times = np.array([0.05, 0.2, 0.35, 0.5])
    expected, _ = ref.neuron(times, [8.0] * 4, 2 * tau_v, tau_v, t_end=1.0)
    out = es.simulate_layer(times, np.zeros(4, np.int64), np.array([[8.0]]),
                            es.LIF(2 * tau_v, tau_v), t_end=1.0, method=method)
    assert len(out) == len(expected) > 15
    np.testing.assert_allclose(out.times, np.array(expected, float), rtol=0, atol=6.7e-16)


def test_spike_times_match_40_digit_reference():
    mismatches, worst, n_spikes = mp_check.check_layers(n_cases=1, seed=1)
    assert n_spikes > 50
    assert mismatches == 0 and worst <= mp_check.TOL_TIME


def test_extreme_regimes_match_40_digit_reference():
    """Stiff and near-degenerate leak ratios, fast and slow time scales, hundreds of
    spikes per neuron: same counts as the reference, times to 1e-14 of t_end."""
    mismatches, worst, n_spikes, most = mp_check.check_extreme_layers(
        n_cases=1, seed=1, max_drive=5.0)
    assert most > 200  # strongly driven neurons really fire hundreds of times
    assert mismatches == 0 and worst <= mp_check.TOL_TIME


def test_gradients_near_p1_match_40_digit_reference():
    """p = 1 + 2e-12 and 1 - 2e-7, where V's two-exponential form cancels."""
    rows = list(mp_check.check_extreme_gradients(n_entries=1, seed=3,
                                                 taus=mp_check.EXTREME_NET_TAUS[:2]))
    assert any(counts > 1.0 for *_, counts in rows)
    for sizes, p, single, loss_err, grad_err, grad_x_err, counts in rows:
        assert abs(p - 1.0) < 1e-6
        assert loss_err <= mp_check.TOL_LOSS, (p, single)
        assert max(grad_err, grad_x_err) <= mp_check.TOL_GRAD, (p, single)


def test_grazing_crossings_match_40_digit_reference():
    for p, eps, n_got, n_ref, dt, allowed in mp_check.check_grazing():
        assert n_ref == (1 if eps > 0 else 0), (p, eps)
        assert n_got == n_ref and dt <= allowed, (p, eps, n_got, dt)


def test_loss_and_gradients_match_40_digit_central_differences():
    rows = list(mp_check.check_gradients(n_entries=1, seed=2, deep=False))
    assert any(counts > 1.0 for *_, counts in rows)  # multi-spike networks really fire repeatedly
    for sizes, p, single, loss_err, grad_err, grad_x_err, counts in rows:
        assert loss_err <= mp_check.TOL_LOSS, (sizes, p, single)
        assert grad_err <= mp_check.TOL_GRAD, (sizes, p, single)
        assert grad_x_err <= mp_check.TOL_GRAD, (sizes, p, single)


def test_cross_entropy_gradient_entry_to_13_digits_of_its_own_size():
    """Relative to the entry itself, not to the largest gradient: small entries are exact too."""
    rng = np.random.default_rng(0)
    net = mp_check.random_network(rng, [5, 7, 3], 0.8, 0.4, False)
    x = rng.uniform(0.0, 0.9, (1, 5))
    _, grads = net.loss_and_grad(x, [1], dead_penalty=0.0, output_l2=0.0)
    for layer, i, j in mp_check.pick_entries(rng, grads, 1)[1::2]:  # the nonzero picks
        (g_ref,) = ref.loss_gradient(x, [1], net.weights, [(layer, i, j)], tau_i=0.8, tau_v=0.4)
        assert abs(grads[layer][i, j] - float(g_ref)) <= 1e-13 * abs(float(g_ref)), (layer, i, j)


@pytest.mark.parametrize("margin", [0.0, 1.0, 20.0, 40.0, 600.0])
def test_cross_entropy_keeps_its_digits_for_confident_samples(margin):
    """Loss and every gradient entry to ~eps |v| of their own size against 40 digits,
    also where the label wins by a margin so large that 1 - softmax underflows
    relative to 1 (the label's entry must stay -sum of the others, not 0)."""
    from eventsim._losses import softmax_cross_entropy
    rng = np.random.default_rng(int(margin))
    v = rng.normal(0.0, 2.0, (6, 4))
    v[:, 0] += margin                      # class 0 on top by about `margin`
    v[5, 1] = v[5, 0]                      # a tie for the top
    labels = np.array([0, 0, 1, 2, 3, 1])
    loss, grad = softmax_cross_entropy(v, labels)
    with mp.workdps(40):
        ref_loss, ref_grad = mp.mpf(0), np.zeros_like(v)
        for s, row in enumerate(v):
            z = mp.fsum(mp.exp(mp.mpf(x)) for x in row)
            ref_loss += mp.log(z) - mp.mpf(row[labels[s]])
            for k, x in enumerate(row):     # p_label - 1 as minus the others' share
                share = (mp.exp(mp.mpf(x)) if k != labels[s] else
                         -mp.fsum(mp.exp(mp.mpf(y)) for j, y in enumerate(row) if j != k))
                ref_grad[s, k] = float(share / z / len(v))
        ref_loss = float(ref_loss / len(v))
    rtol = 1e-15 * (4.0 + np.abs(v).max())  # exp(v_k - v_top) holds ~eps |v| relative
    assert abs(loss - ref_loss) <= rtol * abs(ref_loss)
    assert np.all(np.abs(grad - ref_grad) <= rtol * np.abs(ref_grad))
    assert np.all(grad[0] != 0.0)


def _mp_layer(times, ids, w, tau_i, tau_v, t_end):
    """Spike trains of a layer from the 40-digit reference, neuron by neuron."""
    spike_times, spike_ids = [], []
    for col in range(w.shape[1]):
        spikes, _ = ref.neuron(times, w[ids, col], tau_i, tau_v, t_end=t_end)
        spike_times += [float(s) for s in spikes]
        spike_ids += [col] * len(spikes)
    return np.array(spike_times), np.array(spike_ids, np.int64)


def test_peak_after_inhibition_inside_a_long_interval():
    """V < 0 when a long input-free interval starts, then a peak above threshold
    that falls below it again before the interval ends: the engine's cheap bound
    for skipping intervals must not use max(V0, 0) as if V0 were >= 0 (a benchmark
    of mutants showed no other test notices such a bound missing this spike)."""
    a, b = 1 / 0.8, 1 / 0.4
    t2 = math.log(b / a) / (b - a)                       # the kernel's peak time
    w1 = -10.0 * (b - a) / (math.exp(-a * t2) - math.exp(-b * t2))   # V(t2) = -10
    w2 = 11.0 - w1 * math.exp(-a * t2)                   # I(t2+) = 11
    times, ids, w = np.array([0.0, t2]), np.array([0, 1]), np.array([[w1], [w2]])
    out = es.simulate_layer(times, ids, w, es.LIF(0.8, 0.4), t_end=3.0)
    ref_t, ref_j = _mp_layer(times, ids, w, 0.8, 0.4, 3.0)
    assert ref_t.size == 1
    mismatched, dt = spike_train_diff(out.times, out.ids, ref_t, ref_j, 1)
    assert mismatched == 0 and dt <= 1e-14


@pytest.mark.parametrize("p", [2.0, 1.0, 0.5, 3.7])
def test_sparse_signed_inputs_match_40_digit_reference(p):
    """Few inputs, long gaps and large weights of both signs, so that intervals often
    start with V < 0 and I > 0 (a regime validation.cases.random_case rarely draws)."""
    tau_v, t_end = 0.4, 4.0
    rng = np.random.default_rng(int(p * 100))
    lif = es.LIF(p * tau_v, tau_v)
    for _ in range(25):
        n = int(rng.integers(2, 5))
        times = np.sort(rng.uniform(0.0, 1.5, n))
        w = rng.normal(0.0, 25.0, (n, 3))
        out = es.simulate_layer(times, np.arange(n), w, lif, t_end=t_end)
        ref_t, ref_j = _mp_layer(times, np.arange(n), w, p * tau_v, tau_v, t_end)
        mismatched, dt = spike_train_diff(out.times, out.ids, ref_t, ref_j, 3)
        assert mismatched == 0 and dt <= 1e-14 * t_end


@pytest.mark.parametrize("p", [2.0, 1.0, 0.5, 3.7])
@pytest.mark.parametrize("gap", [300.0, 715.0, 740.0, 760.0, 5000.0])
def test_no_spike_lost_after_hundreds_of_time_constants(p, gap):
    """Input-free intervals of `gap` slow time constants, over which the state's decay
    factors become subnormal (~710-745) or exactly 0: a spike early in such an interval
    must still be found (an end state of exactly 0 once read as 'V still rising' and
    skipped the interval), by simulate_layer and by Network.forward alike."""
    tau_v = 0.4
    tau_i = p * tau_v
    slow = max(tau_i, tau_v)
    times = np.array([0.0, gap * slow])
    w = np.array([[8.0, 30.0, -3.0], [8.0, 4.0, 30.0]]) * max(1.0, 1.0 / p)
    t_end = 2.0 * gap * slow
    lif = es.LIF(tau_i, tau_v)
    out = es.simulate_layer(times, np.arange(2), w, lif, t_end=t_end)
    ref_t, ref_j = _mp_layer(times, np.arange(2), w, tau_i, tau_v, t_end)
    assert np.all(np.bincount(ref_j, minlength=3) > 0)
    mismatched, dt = spike_train_diff(out.times, out.ids, ref_t, ref_j, 3)
    assert mismatched == 0 and dt <= 1e-14 * t_end
    net = es.Network([2, 3, 2], lif, t_out=t_end)
    net.weights = [w, np.ones((3, 2))]
    counts = net.forward(times[None, :]).spike_counts[0][0]
    assert np.array_equal(counts, np.bincount(ref_j, minlength=3))


# ----------------------------------------------------------------------------- membrane

def _mp_membrane(times, w_col, spikes, tau_i, tau_v, t_eval):
    """V, I of one neuron at t_eval (any order) in 40 digits (working_digits + 30,
    so that V keeps its digits also where it is tiny next to I/(b - a)), right-
    continuous: inputs and resets (``spikes``) at t <= t_eval are applied. Also
    returns Va, Ia: the same with |w| (the neuron's no-cancellation scale)."""
    with mp.workdps(ref.working_digits(tau_i, tau_v) + 30):
        tau_i, tau_v = mp.mpf(float(tau_i)), mp.mpf(float(tau_v))
        events = sorted([(float(t), 0, float(w)) for t, w in zip(times, w_col)]
                        + [(float(t), 1, 0.0) for t in spikes])
        state = [mp.mpf(0)] * 4                  # I, V, Ia, Va at time t
        t, k, res = mp.mpf(0), 0, np.empty((4, len(t_eval)))

        def carry(state, s):
            if s == 0:
                return list(state)
            c, v, ca, va = state
            decay = mp.exp(-s / tau_i)
            return [c * decay, ref._potential(s, c, v, tau_i, tau_v),
                    ca * decay, ref._potential(s, ca, va, tau_i, tau_v)]

        for e in np.argsort(t_eval, kind="stable"):
            te = mp.mpf(float(t_eval[e]))
            while k < len(events) and events[k][0] <= te:
                state = carry(state, mp.mpf(events[k][0]) - t)
                t = mp.mpf(events[k][0])
                if events[k][1] == 0:
                    state[0] += events[k][2]
                    state[2] += abs(events[k][2])
                else:
                    state[1] = state[3] = mp.mpf(0)
                k += 1
            res[:, e] = [float(x) for x in carry(state, te - t)]
        return res[1], res[0], res[3], res[2]


def _membrane_cases():
    """(id, times, weights, tau_i, tau_v, t_end): fixed adversarial layers."""
    rng = np.random.default_rng(2024)
    cases = []
    # p = 2, ties among the inputs, firing
    t = rng.uniform(0.0, 1.0, 16)
    t[10:] = t[:6]
    cases.append(("p2-ties", t, rng.normal(0.4, 1.0, (16, 2)) * 4.0, 0.8, 0.4, 2.0))
    # p == 1, tau 1e-3: a burst, 1000 time constants of silence (underflow), a burst
    t = np.concatenate([rng.uniform(0.0, 2e-3, 8), 1.0 + rng.uniform(0.0, 2e-3, 8)])
    cases.append(("p1-silence", t, rng.normal(0.4, 1.0, (16, 2)) * 1.5e3, 1e-3, 1e-3, 2.0))
    # p = 1 + 1e-12 at absolute times around 1e4
    t = 1e4 + rng.uniform(0.0, 1.0, 12)
    cases.append(("p1+1e-12-at-1e4", t, rng.normal(0.5, 1.0, (12, 2)) * 6.0, 0.4 * (1 + 1e-12),
                  0.4, 1e4 + 3.0))
    # p = 1 - 2e-7, tau 1e3, around 1e6
    t = 1e6 + rng.uniform(0.0, 1e3, 12)
    cases.append(("p1-2e-7-at-1e6", t, rng.normal(0.5, 1.0, (12, 2)) * 6e-3, 400.0 * (1 - 2e-7),
                  400.0, 1e6 + 3e3))
    # p = 100 and p = 0.01: 400 inputs of both signs (cancellation), some tied
    for p in (100.0, 0.01):
        t = rng.uniform(0.0, 10.0, 400)
        t[300:] = t[:100]
        scale = 1 / (3 * float(ref.kappa_peak(0.4 * p, 0.4)))
        cases.append((f"p{p:g}-signed", t, rng.normal(0.02, 1.0, (400, 2)) * scale,
                      0.4 * p, 0.4, 10.0))
    return cases


@pytest.mark.parametrize("case", _membrane_cases(), ids=lambda c: c[0])
def test_membrane_matches_40_digit_reference(case):
    """es.membrane at the inputs, at the spikes of ``out`` (the engine's float
    spike times), one ulp either side of both, before the first input, hundreds
    of time constants after the last event and far past t_end, in shuffled
    order, against 40 digits. Tolerances, measured worst (an audit of ~7e5 values
    over p in {2, 1, 0.5, 3.7, 1 +- 1e-12/2e-7, 100, 0.01}) about 2 eps:
    |dV| <= 4 eps sum|w| kappa_max and |dI| <= 4 eps sum|w| (the scale
    cancellation leaves), and, where values decay to tiny sizes, relative to the
    neuron's no-cancellation V, I (same recursion with |w|) times
    1 + (t - first input) / min(tau), the conditioning of e^{-t/tau} on the
    rounding of 1/tau. V == 0 exactly at the neuron's own spikes."""
    _, times, w, tau_i, tau_v, t_end = case
    eps = np.finfo(float).eps
    n_in, n_out = w.shape
    ids = np.arange(n_in)
    lif = es.LIF(tau_i, tau_v)
    out = es.simulate_layer(times, ids, w, lif, t_end=t_end)
    assert np.all(np.bincount(out.ids, minlength=n_out) > 0)
    slow, first = max(tau_i, tau_v), times.min()
    events = np.concatenate([times, out.times])
    t_eval = np.concatenate([
        events, np.nextafter(events, 0.0), np.nextafter(events, np.inf),
        [0.0, first / 2, np.nextafter(first, 0.0), 10 * t_end],
        events.max() + slow * np.array([1.0, 30.0, 300.0, 740.0, 800.0])])
    t_eval = np.random.default_rng(0).permutation(t_eval)
    V, I = es.membrane(times, ids, w, lif, out, t_eval)
    kappa_max = float(ref.kappa_peak(tau_i, tau_v))
    cond = 1.0 + np.maximum(t_eval - first, 0.0) / min(tau_i, tau_v)
    for j in range(n_out):
        spikes = np.sort(out.of(j))
        v_ref, i_ref, v_abs, i_abs = _mp_membrane(times, w[:, j], spikes, tau_i, tau_v, t_eval)
        scale = np.abs(w[:, j]).sum()
        dv, di = np.abs(V[:, j] - v_ref), np.abs(I[:, j] - i_ref)
        assert dv.max() <= 4 * eps * scale * kappa_max
        assert di.max() <= 4 * eps * scale
        assert np.all(dv <= 4 * eps * cond * v_abs + 1e-300)
        assert np.all(di <= 4 * eps * cond * i_abs + 1e-300)
        at_spike = np.isin(t_eval, spikes)
        assert np.all(V[at_spike, j] == 0.0)
        assert np.all(V[t_eval < first, j] == 0.0) and np.all(I[t_eval < first, j] == 0.0)


# ----------------------------------------------------------------------------- networks

def _network_cases():
    """Fixed adversarial recurrent networks: (id, simulate_network keyword arguments)."""
    cases = []
    # equal neurons crossing together and inhibiting each other with no delay: both
    # fire every time (a sum of simultaneous arrivals taken in event order once let
    # them drift an ulp apart, and the first to cross then silenced the other)
    cases.append(("twins-inhibit-d0", dict(
        times=[0.1, 0.7, 1.3], ids=[0, 0, 0], w_in=[[10.0, 10.0]],
        w_rec=[[0.3, -2.3], [-2.3, 0.3]],
        tau_i=0.5, tau_v=0.5, t_end=2.0)))
    w3 = np.full((3, 3), -3.0)
    np.fill_diagonal(w3, 0.35)
    cases.append(("triplets-d0", dict(
        times=[0.05, 0.2, 0.45], ids=[0, 0, 0], w_in=np.full((1, 3), 9.0), w_rec=w3,
        tau_i=2.0, tau_v=0.1, t_end=1.5)))
    # an excitation chain with no delay: 0 fires, 1-4 sit just below threshold and each
    # fires the next through a huge weight (at the same float64 instant); 4 inhibits 0
    tau_i, tau_v = 0.8, 0.4
    with mp.workdps(40):
        s_peak = float(ref._critical_point(mp.mpf(1), mp.mpf(0), mp.mpf(tau_i), mp.mpf(tau_v)))
    k_peak = float(ref.kappa_peak(tau_i, tau_v))
    w_in = np.zeros((2, 5))
    w_in[0, 0], w_in[1, 1:] = 1.5 / k_peak, 0.999 / k_peak
    t_drive = 0.1 + s_peak
    t_fire = es.simulate_layer([t_drive], [0], w_in[:1, :1], es.LIF(tau_i, tau_v), 3.0).times[0]
    for single, w in ((True, 1e15), (False, 1e2)):
        w_rec = np.diag(np.full(4, w), 1)
        if not single:                      # its own spike takes the jump back
            w_rec[1:, 1:] -= np.diag(np.full(4, w))
        w_rec[4, 0] = -w / 1e3
        cases.append((f"chain-d0-w{w:g}", dict(
            times=[t_drive, t_fire - s_peak], ids=[0, 1], w_in=w_in, w_rec=w_rec,
            tau_i=tau_i, tau_v=tau_v, t_end=3.0, single_spike=single)))
    # equal pairs with a delay: their spikes arrive together; self-connections
    w_in = np.array([[9.0, 9.0, 3.0], [6.0, 6.0, 9.0]])
    w_rec = np.array([[0.5, -1.5, 2.0], [-1.5, 0.5, 2.0], [-3.0, -3.0, -0.5]])
    cases.append(("pairs-delay", dict(
        times=[0.05, 0.3, 0.3, 0.6], ids=[0, 1, 0, 1], w_in=w_in, w_rec=w_rec,
        tau_i=0.3, tau_v=0.6, t_end=1.5, delay=0.0625)))
    # strong inhibition and self-connections, scipy.sparse weights
    rng = np.random.default_rng(5)
    w_in = rng.normal(6.0, 4.0, (4, 5))
    w_in[rng.random((4, 5)) < 0.4] = 0.0
    w_rec = -np.abs(rng.normal(0.0, 8.0, (5, 5)))
    w_rec[rng.random((5, 5)) < 0.5] = 0.0
    np.fill_diagonal(w_rec, [3.0, -8.0, 1.5, 0.0, -2.0])
    cases.append(("inhibition-sparse", dict(
        times=rng.uniform(0, 0.9, 14), ids=rng.integers(0, 4, 14),
        w_in=sp.csr_matrix(w_in), w_rec=sp.coo_matrix(w_rec), tau_i=1.11, tau_v=0.3,
        t_end=1.2, delay=0.02)))
    # hundreds of time constants without input; inputs tied at grid times
    times = np.array([0.0, 0.25, 0.25, 0.5, 300.0, 300.0, 300.25, 600.5, 600.5])
    ids = np.array([0, 1, 2, 0, 2, 1, 0, 0, 1])
    w_in = np.array([[1.5, 0.0, 2.0, 1.0], [-1.0, 2.5, 0.5, 1.0], [2.0, 1.0, -2.0, 1.0]])
    w_rec = np.array([[-0.3, 0.8, -0.5, 0.0], [0.0, -0.5, 1.0, -2.0],
                      [0.0, 0.0, -0.2, 0.5], [-1.0, 0.0, -0.3, 0.0]])
    for p, (tau_i, tau_v), delay, drive in ((20.0, (2.0, 0.1), 0.3, 0.6),
                                            (1.0001, (0.50005, 0.5), 0.0, 1.2)):
        scale = drive / float(ref.kappa_peak(tau_i, tau_v))
        cases.append((f"gaps-ties-p{p}", dict(
            times=times * max(tau_i, tau_v), ids=ids, w_in=w_in * scale,
            w_rec=w_rec * scale, tau_i=tau_i, tau_v=tau_v,
            t_end=601.0 * max(tau_i, tau_v), delay=delay)))
    # recurrent arrivals that coincide in float64 with strong external inputs
    w_in = np.array([[6.0, 2.0, 0.0], [0.0, 5.0, 7.0], [-30.0, 30.0, -30.0]])
    w_rec = np.array([[0.0, 1.0, -2.0], [1.5, 0.0, 1.0], [-1.0, 2.0, 0.0]])
    lif, delay = es.LIF(0.8, 0.4), 0.05
    base_t, base_i = [0.1, 0.15, 0.4], [0, 1, 0]
    first = es.simulate_network(base_t, base_i, w_in, w_rec, lif, 1.0, delay=delay)
    extra = (first.times[:3] + delay).tolist()
    cases.append(("arrival=input", dict(
        times=base_t + extra, ids=base_i + [2] * len(extra), w_in=w_in, w_rec=w_rec,
        tau_i=0.8, tau_v=0.4, t_end=1.0, delay=delay)))
    # shifted by 1e4 (README: outputs shift by the same amount)
    cases.append(("shift-1e4", dict(
        times=np.array(base_t) + 1e4, ids=base_i, w_in=w_in, w_rec=w_rec, tau_i=0.8,
        tau_v=0.4, t_end=1e4 + 1.0, delay=0.0)))
    return cases


@pytest.mark.parametrize("name", ["twins-inhibit-d0", "triplets-d0", "chain-d0-w1e+15",
                                  "chain-d0-w100", "pairs-delay", "inhibition-sparse",
                                  "gaps-ties-p20.0", "gaps-ties-p1.0001", "arrival=input",
                                  "shift-1e4"])
def test_network_matches_40_digit_reference(name):
    """simulate_network against validation.mp_reference.network on fixed adversarial
    networks: ties of inputs, of crossings and of arrivals; chains of spikes at one
    float64 instant; strong inhibition; self-connections; sparse weights; gaps of
    hundreds of time constants; p in {1, 20, 2, 0.5, 3.7, 1.0001}. Same spike count
    per neuron, times to 1e-12 max(1, t_end)."""
    case = dict(dict(_network_cases())[name])
    tau_i, tau_v = case.pop("tau_i"), case.pop("tau_v")
    out = es.simulate_network(lif=es.LIF(tau_i, tau_v), **case)
    expected = ref.network(case["times"], case["ids"], case["w_in"], case["w_rec"], tau_i,
                           tau_v, 1.0, case["t_end"], case.get("delay", 0.0),
                           case.get("single_spike", False))
    ref_t = np.array([float(t) for t, _ in expected])
    ref_j = np.array([j for _, j in expected], np.int64)
    assert ref_t.size >= 5
    np.testing.assert_array_equal(out.counts(), np.bincount(ref_j, minlength=out.n_neurons))
    for j in range(out.n_neurons):
        np.testing.assert_allclose(out.of(j), ref_t[ref_j == j], rtol=0,
                                   atol=1e-12 * max(1.0, case["t_end"]))
