"""Slow, obviously-right reference formulas in plain NumPy (no eventsim code).

Spike-response (SRM) form of the current-based LIF neuron with membrane-only
reset: with input spikes (t_k, w_k) and the neuron's own spikes s_n,

    I(t) = sum_{t_k <= t} w_k e^{-(t - t_k)/tau_i}
    V(t) = sum_{t_k <= t} w_k kappa(t - t_k) - theta sum_{s_n <= t} e^{-(t - s_n)/tau_v}
    kappa(s) = (e^{-s/tau_i} - e^{-s/tau_v}) / (1/tau_v - 1/tau_i)     (s e^{-s/tau} if equal)

(each reset removes theta from V, and that removal then leaks with tau_v).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import lambertw


def kappa(s, tau_i, tau_v):
    """PSP kernel, 0 for s < 0. Direct difference of exponentials (cancels for p ~ 1)."""
    s = np.asarray(s, dtype=np.float64)
    pos = np.maximum(s, 0.0)
    if tau_i == tau_v:
        k = pos * np.exp(-pos / tau_v)
    else:
        k = (np.exp(-pos / tau_i) - np.exp(-pos / tau_v)) / (1.0 / tau_v - 1.0 / tau_i)
    return np.where(s >= 0.0, k, 0.0)


def current(t, times, weights_of_input, tau_i):
    """I(t) for one neuron: weights_of_input[k] is the weight of input spike k. Right-continuous."""
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    times = np.asarray(times, dtype=np.float64)
    w = np.asarray(weights_of_input, dtype=np.float64)
    fin = np.isfinite(times)
    times, w = times[fin], w[fin]
    d = t[:, None] - times[None, :]
    return np.sum(np.where(d >= 0.0, w[None, :] * np.exp(-np.maximum(d, 0.0) / tau_i), 0.0),
                  axis=1)


def potential(t, times, weights_of_input, tau_i, tau_v, theta=1.0, own_spikes=(),
              left=False):
    """V(t) for one neuron by the SRM formula.

    ``own_spikes``: the neuron's spike times (each subtracts theta e^{-(t-s)/tau_v}
    for s <= t, or s < t with ``left=True``, which gives the left limit V(t^-)).
    Inputs with t_k <= t contribute (kappa(0) = 0, so this is the same either way).
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    times = np.asarray(times, dtype=np.float64)
    w = np.asarray(weights_of_input, dtype=np.float64)
    fin = np.isfinite(times)
    times, w = times[fin], w[fin]
    v = np.sum(w[None, :] * kappa(t[:, None] - times[None, :], tau_i, tau_v), axis=1)
    own = np.asarray(own_spikes, dtype=np.float64)
    if own.size:
        d = t[:, None] - own[None, :]
        active = d > 0.0 if left else d >= 0.0
        v = v - theta * np.sum(np.where(active, np.exp(-np.maximum(d, 0.0) / tau_v), 0.0),
                               axis=1)
    return v


def column(times, ids, weights, j):
    """Per-input-spike weights of output neuron j (inputs as given, no sorting)."""
    return np.asarray(weights, dtype=np.float64)[np.asarray(ids, dtype=np.int64), j]


def max_potential_no_reset(times, weights_of_input, tau_i, tau_v, t_end):
    """(max V on [0, t_end], argmax) of a neuron that never fires, exactly.

    Between inputs V(s) = V0 e^{-s/tau_v} + I0 kappa(s) (s from the interval
    start); its only stationary point solves dV/ds = I0 e^{-s/tau_i} - V/tau_v = 0.
    That equation is solved with brentq (not with a closed formula) on each
    interval where dV/ds changes sign, and V is evaluated by the SRM formula.
    """
    from scipy.optimize import brentq

    times = np.asarray(times, dtype=np.float64)
    w = np.asarray(weights_of_input, dtype=np.float64)
    keep = times < t_end
    times, w = times[keep], w[keep]
    order = np.argsort(times, kind="stable")
    times, w = times[order], w[order]
    bounds = np.unique(np.concatenate([[0.0], times, [t_end]]))

    def v_at(t):
        return float(potential(t, times, w, tau_i, tau_v)[0])

    def dv_at(t, lo):
        # dV/dt at t for the inputs received up to the interval start lo
        old = times <= lo
        return float(current(t, times[old], w[old], tau_i)[0]) - v_at(t) / tau_v

    vals = [v_at(t) for t in bounds]
    k = int(np.argmax(vals))
    best_v, best_t = vals[k], float(bounds[k])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if dv_at(lo, lo) > 0.0 and dv_at(hi, lo) < 0.0:
            ts = brentq(dv_at, lo, hi, args=(lo,), xtol=1e-15, maxiter=500)
            vv = v_at(ts)
            if vv > best_v:
                best_v, best_t = vv, ts
    return best_v, best_t


def grid_spikes(times, weights_of_input, tau_i, tau_v, theta=1.0, t_end=1.0, n_grid=4001,
                single_spike=False):
    """Spike times of one neuron: scan V (SRM formula) on a uniform grid, bisect each crossing.

    Obviously right but not strict: an excursion above threshold narrower than
    the grid spacing can be missed.
    """
    times = np.asarray(times, dtype=np.float64)
    w = np.asarray(weights_of_input, dtype=np.float64)
    keep = times < t_end
    times, w = times[keep], w[keep]
    grid = np.linspace(0.0, t_end, n_grid)[:-1]
    spikes: list[float] = []
    start = 0
    while True:
        v = potential(grid[start:], times, w, tau_i, tau_v, theta, spikes)
        above = np.flatnonzero(v >= theta)
        if not above.size:
            break
        m = start + int(above[0])
        if m == start:  # only right after a reset at a grid point; cannot happen for V=0
            break
        lo, hi = grid[m - 1], grid[m]
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            if potential(mid, times, w, tau_i, tau_v, theta, spikes)[0] >= theta:
                hi = mid
            else:
                lo = mid
        spikes.append(hi)
        if single_spike:
            break
        start = m
    return np.asarray(spikes)


def p2_single_input_spikes(w, t0, tau_i, theta=1.0, t_end=math.inf):
    """All spikes of a p = 2 neuron driven by one input of weight w at t0, by hand.

    With u = t - t0, x = e^{-u/tau_i} and tau_v = tau_i/2, kappa(u) = tau_i (x - x^2), so
    after spikes x_1..x_n:  w tau_i (x - x^2) - theta sum_i (x / x_i)^2 = theta, i.e.
    (w tau_i + theta S) x^2 - w tau_i x + theta = 0 with S = sum_i x_i^{-2}; the
    next spike is the larger root x (earliest time) if real and < x_n.
    """
    out = []
    s_sum = 0.0
    x_prev = 1.0
    c = w * tau_i
    while True:
        q = c + theta * s_sum
        disc = c * c - 4.0 * q * theta
        if disc < 0.0:
            break
        x = (c + math.sqrt(disc)) / (2.0 * q)
        if not x < x_prev:
            break
        t = t0 - tau_i * math.log(x)
        if t >= t_end:
            break
        out.append(t)
        s_sum += 1.0 / (x * x)
        x_prev = x
    return np.asarray(out)


def p1_single_input_first_spike(w, t0, tau, theta=1.0):
    """p = 1: V(u) = w u e^{-u/tau}; first u with V = theta is -tau W_0(-theta/(w tau))."""
    z = -theta / (w * tau)
    if z < -1.0 / math.e:
        return math.inf
    return t0 - tau * float(np.real(lambertw(z, 0)))


def adam_steps(param, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """Kingma & Ba's Adam with bias correction, as PyTorch's AdamW writes it
    (decoupled decay: p <- p (1 - lr wd) before the Adam step), over a sequence
    of gradients; returns (param, m, v) after the last step."""
    p = np.array(param, dtype=np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for step, g in enumerate(grads, start=1):
        p = p * (1.0 - lr * weight_decay)
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g ** 2
        m_hat = m / (1.0 - beta1 ** step)
        v_hat = v / (1.0 - beta2 ** step)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


def matmul(x, y):
    """x @ y with each entry summed in increasing order of the inner index, one
    rounded multiply and one rounded add at a time (Python floats)."""
    out = np.zeros((x.shape[0], y.shape[1]))
    for r in range(x.shape[0]):
        for c in range(y.shape[1]):
            total = 0.0
            for k in range(x.shape[1]):
                total += float(x[r, k]) * float(y[k, c])
            out[r, c] = total
    return out
