"""One neuron's forward event scan and reverse adjoint scan (scalar kernels).

Both functions are plain ``@njit`` functions without allocation, so the CPU
drivers (``eventsim._layer``) and the CUDA drivers (``eventsim._cuda``) run the
same code. A neuron's inputs are one sample's input spikes, sorted by time,
``times[start:stop]`` with presynaptic ids ``ids[start:stop]`` and weights
``w[ids[k], j]``; every input lies in [0, t_end). Interval k is
[times[k], times[k+1]) (the last one ends at t_end) and its decay factors
``ea[k] = e^{-a L}``, ``eb[k] = e^{-b L}``, ``kap[k] = kappa(L)`` and
``kmax[k] = max kappa on [0, L]`` are shared by all neurons of the sample.

Cost per neuron: O(inputs + output spikes) in time, O(output spikes) in memory.
"""

import math

from ._math import first_crossing, jit, kappa


@jit
def neuron_forward(j, times, ids, ea, eb, kap, kmax, start, stop, t_end, w, a, b, theta,
                   single_spike, method, max_spikes, out_t, out_dv):
    """Exact event scan of neuron j (paper eqs. 11-19, any p).

    At each input the current jumps by w; over the following interval the state
    is propagated in closed form. An interval is examined exactly (see
    ``first_crossing``) only when the cheap bound
    max(V0, 0) + max(I0, 0) * max(kappa) reaches theta, which no spike can
    escape. After a spike V = 0 and I is kept, and the search restarts from the
    spike time inside the same interval, so any number of spikes per interval
    is found. In single-spike mode the neuron keeps integrating after its one
    spike but never fires again.

    Writes spike times and dV/dt just before each spike (I - b*theta, the
    denominator of the implicit-function gradient) into ``out_t``/``out_dv``
    while they have room, counts on past that, and stops after
    ``max_spikes + 1`` spikes. Returns (spike count, V(t_end)).
    """
    cap = out_t.shape[0]
    v = 0.0
    cur = 0.0
    n = 0
    can_fire = True
    for k in range(start, stop):
        cur += w[ids[k], j]
        if can_fire and max(v, 0.0) + max(cur, 0.0) * kmax[k] >= theta:
            t0 = times[k]
            t1 = times[k + 1] if k + 1 < stop else t_end
            tc = t0
            while True:
                s = first_crossing(v, cur, t1 - tc, a, b, theta, method)
                if s == math.inf:
                    break
                ts = tc + s
                if ts >= t_end:
                    break
                cur = cur * math.exp(-a * s)
                if n < cap:
                    out_t[n] = ts
                    out_dv[n] = cur - b * theta
                n += 1
                v = 0.0
                tc = ts
                if single_spike or n > max_spikes:
                    can_fire = False
                    break
            if n > max_spikes:
                return n, v
            if tc == t0:
                v = v * eb[k] + cur * kap[k]
                cur = cur * ea[k]
            else:
                rest = t1 - tc
                v = v * math.exp(-b * rest) + cur * kappa(rest, a, b)
                cur = cur * math.exp(-a * rest)
        else:
            v = v * eb[k] + cur * kap[k]
            cur = cur * ea[k]
    return n, v


@jit
def neuron_backward(times, ea, eb, kap, start, stop, t_end, a, b, theta,
                    spk_t, spk_dv, spk_g, n_spk, nu, min_slope, li_out, lt_out):
    """Reverse adjoint scan of one neuron: exact gradients through every reset.

    The membrane is V(t) = sum_k w_k kappa(t - t_k) - theta sum_n e^{-b(t - s_n)}
    (each reset subtracts theta, which then decays), and spike n is defined by
    F_n = V(s_n^-) - theta = 0. The implicit-function theorem gives
    ds_n/dx = -(dF_n/dx) / V'(s_n^-), V'(s_n^-) = I(s_n) - b theta, and the
    reverse scan accumulates the adjoint state (lambda_V, lambda_I) of the
    linear ODE backwards from t_end, where lambda_V = dL/dV(t_end) = ``nu``:

    - between events (transposed state transition):
      lambda_I <- e^{-aL} lambda_I + kappa(L) lambda_V,  lambda_V <- e^{-bL} lambda_V
    - at spike n, with g_n = dL/ds_n from downstream:
      mu_n = (g_n - theta b lambda_V) / V'(s_n^-),  lambda_V <- lambda_V - mu_n
      (the theta b lambda_V term is the reset path to all later spikes and to V(t_end);
      the synaptic-current path lives in lambda_I.)
    - at input k: dL/dw_k = lambda_I(t_k), dL/dt_k = w_k (a lambda_I - lambda_V).

    Writes ``li_out[k - start] = lambda_I(t_k)`` and
    ``lt_out[k - start] = a lambda_I(t_k) - lambda_V(t_k)``. ``min_slope`` > 0
    clips V'(s_n^-) from below (0 = exact).
    """
    lv = nu
    li = 0.0
    m = n_spk - 1
    tcur = t_end
    for k in range(stop - 1, start - 1, -1):
        t0 = times[k]
        if m >= 0 and spk_t[m] > t0:
            while m >= 0 and spk_t[m] > t0:
                s = spk_t[m]
                gap = tcur - s
                li = li * math.exp(-a * gap) + kappa(gap, a, b) * lv
                lv = lv * math.exp(-b * gap)
                slope = spk_dv[m]
                if slope < min_slope:
                    slope = min_slope
                lv -= (spk_g[m] - theta * b * lv) / slope
                tcur = s
                m -= 1
            gap = tcur - t0
            li = li * math.exp(-a * gap) + kappa(gap, a, b) * lv
            lv = lv * math.exp(-b * gap)
        else:
            li = li * ea[k] + kap[k] * lv
            lv = lv * eb[k]
        tcur = t0
        li_out[k - start] = li
        lt_out[k - start] = a * li - lv
