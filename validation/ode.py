"""Independent reference simulators for a layer of current-based LIF neurons.

Nothing here imports eventsim's kernels: the model is re-implemented from its
definition so that the engine can be checked against it.

Model (paper eqs. 2-4, beta_I = beta_V = 1)::

    dI/dt = -I / tau_i + sum_k w_k delta(t - t_k)
    dV/dt = -V / tau_v + I
    V reaches threshold -> spike, V := 0, I unchanged.

Conventions (shared with eventsim): inputs at or after ``t_end`` (and +inf) are
ignored, a spike at exactly ``t_end`` is not counted, V touching the
threshold counts as a spike, and with ``single_spike=True`` a neuron fires at
most once (after it V still resets to 0 and keeps integrating).

References:

``ode_simulate_layer`` / ``ode_membrane`` / ``ode_simulate_network``
    numerical integration with ``scipy.integrate.solve_ivp`` (DOP853), see
    ``ode_simulate_layer`` for exactly how strict the spike search is; the
    network version adds recurrent current jumps (with a delay).
``closed_form_layer``
    p = tau_i / tau_v == 2 only: the paper's eq. 19 in the z = e^{t/tau_i}
    form, written with plain loops (eqs. 13-19).
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

__all__ = ["ode_simulate_layer", "ode_membrane", "ode_simulate_network", "closed_form_layer",
           "RTOL", "ATOL", "MAX_STEP_FRACTION", "SAMPLES_PER_STEP"]

#: solve_ivp tolerances
RTOL = 1e-12
ATOL = 1e-14
#: max_step = MAX_STEP_FRACTION * min(tau_i, tau_v)
MAX_STEP_FRACTION = 0.05
#: dense samples per accepted solver step used by the excursion scan
SAMPLES_PER_STEP = 8
_XTOL = 1e-300  # brentq: stop on its relative tolerance (4 eps) only


# --------------------------------------------------------------------------- helpers

def _as_inputs(times, ids, weights, t_end):
    """Validate loosely and group one sample's inputs by distinct time.

    Returns (event_times (K,), jumps (K, N), N): ``jumps[k]`` is the summed
    weight row of every input at ``event_times[k]``; only inputs < t_end.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    ids = np.asarray(ids).reshape(-1)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"weights must be 2-D (n_in, n_out), got shape {weights.shape}")
    if times.shape != ids.shape:
        raise ValueError("times and ids must have the same length")
    if np.isnan(times).any() or (times < 0).any():
        raise ValueError("times must be >= 0 and not NaN")
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError("t_end must be positive and finite")
    ids = ids.astype(np.int64)
    keep = times < t_end
    times, ids = times[keep], ids[keep]
    n_out = weights.shape[1]
    uniq, inv = np.unique(times, return_inverse=True)
    jumps = np.zeros((uniq.shape[0], n_out))
    np.add.at(jumps, inv, weights[ids])
    return uniq, jumps, n_out


def _check_taus(tau_i, tau_v, threshold):
    for name, val in (("tau_i", tau_i), ("tau_v", tau_v), ("threshold", threshold)):
        if not (val > 0 and math.isfinite(val)):
            raise ValueError(f"{name} must be positive and finite, got {val!r}")
    return float(tau_i), float(tau_v), float(threshold)


# --------------------------------------------------------------------------- ODE reference

class _OdeLayer:
    """Piecewise ODE integration of N independent neurons (state [V, I])."""

    def __init__(self, tau_i, tau_v, threshold, n, max_step=None, samples=SAMPLES_PER_STEP):
        self.a = 1.0 / tau_i
        self.b = 1.0 / tau_v
        self.theta = threshold
        self.n = n
        self.max_step = (MAX_STEP_FRACTION * min(tau_i, tau_v)) if max_step is None else max_step
        self.samples = samples

    def rhs(self, t, y):
        n = self.n
        v, cur = y[:n], y[n:]
        return np.concatenate([cur - self.b * v, -self.a * cur])

    def piece(self, t0, t1, y0, eligible):
        """Integrate [t0, t1] from y0; return (t_spike, j_spike, sol) or (None, None, sol).

        The solver stops at a terminal event max_j(V_j - theta) = 0 over eligible
        neurons; independently every accepted step is scanned densely (see
        ``_first_excursion``) and the earliest crossing found by either wins.
        """
        events = None
        idx = np.flatnonzero(eligible)
        if idx.size:
            theta = self.theta

            def hit(t, y):
                return float(np.max(y[idx])) - theta
            hit.terminal = True
            hit.direction = 1.0
            events = [hit]
        res = solve_ivp(self.rhs, (t0, t1), y0, method="DOP853", rtol=RTOL, atol=ATOL,
                        max_step=self.max_step, dense_output=True, events=events)
        if res.status == -1:
            raise RuntimeError(f"solve_ivp failed: {res.message}")
        sol = res.sol
        if not idx.size:
            return None, None, sol
        t_stop = float(res.t[-1])
        best_t, best_j = None, None
        ts = sol.ts
        for s in range(len(ts) - 1):
            lo, hi = float(ts[s]), min(float(ts[s + 1]), t_stop)
            if hi <= lo:
                continue
            found = self._first_excursion(sol, lo, hi, idx)
            if found is not None:
                best_t, best_j = found
                break
        if best_t is None and res.status == 1:
            # event reported but the scan did not confirm it: trust the event
            # (can only happen at the rounding level at t_stop)
            v_stop = sol(t_stop)[:self.n]
            j = idx[int(np.argmax(v_stop[idx]))]
            best_t, best_j = t_stop, int(j)
        return best_t, best_j, sol

    def _first_excursion(self, sol, lo, hi, idx):
        """Earliest threshold crossing of an eligible neuron on [lo, hi], or None.

        Samples V and dV/dt = I - V/tau_v at ``samples + 1`` equispaced points
        of the step's dense output. For each neuron a crossing is bracketed by
        the first sample with V >= theta, or by a local maximum of V between two
        samples (dV/dt > 0 then <= 0, located with brentq on dV/dt) whose value
        is >= theta; the crossing is then found with brentq on V - theta.
        """
        theta, b, n = self.theta, self.b, self.n
        grid = np.linspace(lo, hi, self.samples + 1)
        y = sol(grid)
        v = y[:n][idx]
        dv = y[n:][idx] - b * y[:n][idx]
        best = None
        for r, j in enumerate(idx):
            vj, dvj = v[r], dv[r]
            if vj[0] >= theta:
                cand = (lo, lo)  # already at threshold at the step start
            else:
                cand = None
                for m in range(self.samples):
                    if vj[m + 1] >= theta:
                        cand = (grid[m], grid[m + 1])
                        break
                    if dvj[m] > 0.0 and dvj[m + 1] <= 0.0:
                        def slope(t, j=j):
                            yy = sol(t)
                            return yy[n + j] - b * yy[j]
                        t_max = grid[m + 1] if dvj[m + 1] == 0.0 else brentq(
                            slope, grid[m], grid[m + 1], xtol=_XTOL, maxiter=500)
                        if sol(t_max)[j] >= theta:
                            cand = (grid[m], t_max)
                            break
            if cand is None:
                continue
            a_, b_ = cand
            if a_ == b_:
                t_cross = a_
            else:
                def f(t, j=j):
                    return sol(t)[j] - theta
                fb = f(b_)
                t_cross = b_ if fb == 0.0 else brentq(f, a_, b_, xtol=_XTOL, maxiter=500)
            if best is None or t_cross < best[0]:
                best = (float(t_cross), int(j))
        return best


def _run_ode(times, ids, weights, tau_i, tau_v, threshold, t_end, single_spike, t_eval=None,
             max_step=None, samples=SAMPLES_PER_STEP, w_rec=None, delay=0.0):
    tau_i, tau_v, threshold = _check_taus(tau_i, tau_v, threshold)
    t_end = float(t_end)
    ev_t, jumps, n = _as_inputs(times, ids, weights, t_end)
    # pending current jumps: (time, sequence number, jump vector); recurrent spikes are
    # pushed as they happen (delay 0: at the spike time, applied right after the reset)
    pending = [(float(t), k, jumps[k]) for k, t in enumerate(ev_t)]
    heapq.heapify(pending)
    seq = len(pending)
    sim = _OdeLayer(tau_i, tau_v, threshold, n, max_step, samples)
    y = np.zeros(2 * n)
    eligible = np.ones(n, dtype=bool)
    out_t, out_j = [], []
    if t_eval is not None:
        t_eval = np.asarray(t_eval, dtype=np.float64).reshape(-1)
        if (t_eval < 0).any() or (t_eval > t_end).any() or np.isnan(t_eval).any():
            raise ValueError("t_eval must lie in [0, t_end]")
        v_out = np.empty((t_eval.shape[0], n))
        i_out = np.empty((t_eval.shape[0], n))
    t = 0.0
    while True:
        while pending and pending[0][0] <= t:
            y[n:] += heapq.heappop(pending)[2]
        t_next = min(pending[0][0] if pending else t_end, t_end)
        if t_next <= t:
            # only at t == t_end
            if t_eval is not None:
                sel = t_eval == t
                v_out[sel], i_out[sel] = y[:n], y[n:]
            break
        t_spk, j_spk, sol = sim.piece(t, t_next, y.copy(), eligible)
        stop = t_spk if (t_spk is not None and t_spk < t_end) else t_next
        if t_eval is not None:
            sel = (t_eval >= t) & (t_eval < stop)
            if sel.any():
                yy = sol(t_eval[sel])
                v_out[sel], i_out[sel] = yy[:n].T, yy[n:].T
        y = np.asarray(sol(stop), dtype=np.float64).copy()
        t = stop
        if t_spk is not None and t_spk < t_end:
            out_t.append(t_spk)
            out_j.append(j_spk)
            y[j_spk] = 0.0
            if single_spike:
                eligible[j_spk] = False
            if w_rec is not None and np.any(w_rec[j_spk] != 0.0) and t_spk + delay < t_end:
                heapq.heappush(pending, (t_spk + delay, seq, w_rec[j_spk]))
                seq += 1
    out_t = np.asarray(out_t, dtype=np.float64)
    out_j = np.asarray(out_j, dtype=np.int64)
    order = np.lexsort((out_j, out_t))
    if t_eval is not None:
        return out_t[order], out_j[order], v_out, i_out
    return out_t[order], out_j[order]


def ode_simulate_layer(times, ids, weights, tau_i, tau_v, threshold=1.0, t_end=1.0,
                       single_spike=False, *, max_step=None, samples=SAMPLES_PER_STEP):
    """Output spikes of a layer by direct numerical integration of the ODE.

    Parameters mirror ``eventsim.simulate_layer`` (``weights`` is (n_in, n_out),
    weights[i, j] is the jump of I_j at a spike of input i).

    Method: the inputs are grouped by distinct time; between two consecutive
    input times the 2N-dimensional linear system (V_j, I_j) is integrated with
    ``solve_ivp(method="DOP853", rtol=1e-12, atol=1e-14,
    max_step=0.05 * min(tau_i, tau_v))`` and dense output, with a terminal
    event max_j(V_j) - threshold = 0 (direction +1) over the neurons still
    allowed to fire. After each spike the integration restarts from the spike
    time with that neuron's V = 0 and every I carried over (inputs are applied
    as jumps of I at their time, before integrating on).

    How strict the spike search is: solve_ivp's event only sees sign changes
    of V - threshold at step ends, so it misses an excursion above threshold
    that starts and ends inside one step. Therefore every accepted step
    (length <= max_step) is also sampled at 9 equispaced points of its dense
    output (spacing <= max_step / 8 = min(tau_i, tau_v) / 160), and a crossing
    is bracketed either by a sample with V >= threshold or by a local maximum
    of V between two samples (dV/dt = I - V/tau_v goes from > 0 to <= 0;
    the maximum is located with brentq on dV/dt and tested against the
    threshold). The crossing itself is then solved with brentq on the dense
    output to 4 machine epsilons relative. Consequently an above-threshold
    excursion can be missed only if (a) dV/dt changes sign at least twice
    between two consecutive samples (it cannot for this model: between inputs
    V is a sum of two exponentials with at most one extremum, and every input
    time and every reset is a step boundary), or (b) its peak exceeds the
    threshold by less than the dense-output error (~1e-12 relative; grazing
    cases, which no tolerance can decide). Spike times carry the integration
    error: measured <= 2e-14 against the exact engine on ``validation.compare``'s
    cases (t_end = 1, tau ~ 0.3-1.1), ~1e-11 for tau ~ 1e-3 with 1e5 spikes.

    Returns (spike_times float64, spike_ids int64), sorted by (time, id).
    Slow (Python + solve_ivp per input interval and per spike): meant for
    small cases.
    """
    return _run_ode(times, ids, weights, tau_i, tau_v, threshold, t_end, single_spike,
                    max_step=max_step, samples=samples)


def ode_membrane(times, ids, weights, tau_i, tau_v, threshold=1.0, t_end=1.0,
                 single_spike=False, *, t_eval, max_step=None, samples=SAMPLES_PER_STEP):
    """V and I of every neuron at ``t_eval`` (each in [0, t_end]) from the ODE reference.

    Runs ``ode_simulate_layer`` (its own spikes and resets) and reads the dense
    solution: right-continuous, so an input or a reset at exactly t is applied
    (V == 0 at a spike time). Returns (spike_times, spike_ids, V, I) with V, I of
    shape (len(t_eval), n_out).
    """
    return _run_ode(times, ids, weights, tau_i, tau_v, threshold, t_end, single_spike,
                    t_eval=t_eval, max_step=max_step, samples=samples)


def ode_simulate_network(times, ids, w_in, w_rec, tau_i, tau_v, threshold=1.0, t_end=1.0,
                         delay=0.0, single_spike=False, *, max_step=None,
                         samples=SAMPLES_PER_STEP):
    """Recurrent network of N neurons by the same piecewise ODE integration.

    ``w_in`` (n_in, N); ``w_rec`` (N, N) dense or scipy.sparse, w_rec[i, j] is the
    jump of I_j at a spike of neuron i (self-connections allowed). A spike at
    t_s reaches its targets at t_s + delay (delay 0: at t_s itself, after the
    spiking neuron's reset; since only I jumps, V stays continuous and the
    order of simultaneous jumps does not matter). Arrivals at or after t_end
    are dropped. Strictness as in ``ode_simulate_layer``.
    Returns (spike_times, spike_ids) sorted by (time, id).
    """
    if hasattr(w_rec, "toarray"):
        w_rec = w_rec.toarray()
    if hasattr(w_in, "toarray"):
        w_in = w_in.toarray()
    w_rec = np.asarray(w_rec, dtype=np.float64)
    w_in = np.asarray(w_in, dtype=np.float64)
    if w_in.ndim != 2 or w_rec.shape != (w_in.shape[1], w_in.shape[1]):
        raise ValueError(f"w_rec must have shape (N, N) with N = w_in.shape[1], got "
                         f"{w_rec.shape} and w_in {w_in.shape}")
    if not (delay >= 0 and math.isfinite(delay)):
        raise ValueError("delay must be finite and >= 0")
    return _run_ode(times, ids, w_in, tau_i, tau_v, threshold, t_end, single_spike,
                    max_step=max_step, samples=samples, w_rec=w_rec, delay=float(delay))


# --------------------------------------------------------------------------- p = 2 closed form

def closed_form_layer(times, ids, weights, tau_i, tau_v, threshold=1.0, t_end=1.0,
                      single_spike=False):
    """Output spikes for p = tau_i / tau_v == 2 by the paper's eq. 19 (z-form), plain loops.

    With z = e^{t/tau_i}, input spikes z_m (weights w_m) and the neuron's last
    own spike z_last (z_last = 1, i.e. t = 0, before the first spike), on an
    interval without inputs (eqs. 14-17)::

        V(z) = A / z - B / z^p,
        A = c sum_m w_m z_m,  B = c sum_m w_m z_m max(z_last, z_m)^{p-1},
        c = tau_i tau_v / (tau_i - tau_v)

    For p = 2, V(z) = threshold <=> threshold z^2 - A z + B = 0, and V > threshold
    exactly between the two roots, so the next spike is the smaller root
    z = (A - sqrt(A^2 - 4 threshold B)) / (2 threshold)  (eq. 19)
    if it lies in [max(z_last, z_m'), z_{m'+1}). It is evaluated as
    2B / (A + sqrt(A^2 - 4 threshold B)) when A > 0 (same number, no
    cancellation). Sums are recomputed from scratch in every interval.

    Returns (spike_times, spike_ids) sorted by (time, id). Fine for t_end ~ 1
    (z overflows for t / tau_i > ~700).
    """
    tau_i, tau_v, threshold = _check_taus(tau_i, tau_v, threshold)
    if tau_i != 2.0 * tau_v:
        raise ValueError(f"closed_form_layer needs tau_i == 2 tau_v, got p = {tau_i / tau_v!r}")
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    ids = np.asarray(ids).reshape(-1).astype(np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    keep = times < t_end
    times, ids = times[keep], ids[keep]
    order = np.lexsort((ids, times))
    times, ids = times[order], ids[order]
    c = tau_i * tau_v / (tau_i - tau_v)
    zhat = [math.exp(t / tau_i) for t in times]
    z_end = math.exp(t_end / tau_i)
    n_in = len(zhat)
    out_t, out_j = [], []
    for j in range(weights.shape[1]):
        w = [float(weights[i, j]) for i in ids]
        z_last = 1.0
        fired = False
        for mp in range(n_in):
            if fired and single_spike:
                break
            z_hi = zhat[mp + 1] if mp + 1 < n_in else z_end
            while True:
                z_lo = max(z_last, zhat[mp])
                if z_lo >= z_hi:
                    break
                big_a = 0.0
                big_b = 0.0
                for m in range(mp + 1):
                    big_a += w[m] * zhat[m]
                    big_b += w[m] * zhat[m] * max(z_last, zhat[m])
                big_a *= c
                big_b *= c
                disc = big_a * big_a - 4.0 * threshold * big_b
                if disc < 0.0:
                    break
                root = math.sqrt(disc)
                if big_a > 0.0:
                    z1 = 2.0 * big_b / (big_a + root)
                else:
                    z1 = (big_a - root) / (2.0 * threshold)
                if not (z_lo <= z1 < z_hi):
                    break
                out_t.append(tau_i * math.log(z1))
                out_j.append(j)
                z_last = z1
                fired = True
                if single_spike:
                    break
    out_t = np.asarray(out_t, dtype=np.float64)
    out_j = np.asarray(out_j, dtype=np.int64)
    order = np.lexsort((out_j, out_t))
    keep = out_t[order] < t_end
    return out_t[order][keep], out_j[order][keep]
