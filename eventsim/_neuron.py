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

from ._math import crossing_on_rise, decay, decay_ak, first_crossing, jit


@jit
def rising_at_end(v1, c1, b, theta):
    """dV/dt = c1 - b v1 > 0 at an interval end, beyond rounding and underflow."""
    return c1 - b * v1 >= 1e-12 * (abs(c1) + b * abs(v1)) + 1e-280 * b * theta


@jit
def rises_through(v0, v1, c1, b, theta):
    """V below threshold at an interval's start, at or above it at the end, and still
    rising there (dV/dt = c1 - b v1 >= 0): the first crossing is bracketed by the
    interval (``exact_interval``), no maximum to locate."""
    return theta > v0 and v1 >= theta and c1 - b * v1 >= 0.0


@jit
def needs_exact(v0, c0, v1, c1, km, b, theta):
    """Can a spike hide in an interval with state (v0, c0) at its start and
    (v1, c1) at its end, if computed without resets? Sound filter, no false negatives:

    V has at most one extremum (a maximum, when I > 0), so a crossing needs
    V(end) >= theta, or a maximum inside the interval (dV/dt > 0 at the start,
    < 0 at the end) bounded by max(V0, 0) + max(I0, 0) * max(kappa) >= theta.
    Margins of 1e-12 only send borderline cases to the exact search. The end
    state can only prove that V still rises (dV/dt = c1 - b v1 > 0) while it is
    far from underflow: after an interval of ~700 time constants (v1, c1) are
    subnormal or exactly 0 and their sign says nothing, so ``rising_at_end``
    adds a floor of 1e-280 b theta to the margin and such intervals go to the bound.
    """
    if v1 >= theta * (1.0 - 1e-12):
        return True
    if c0 - b * v0 <= 0.0:
        return False
    if rising_at_end(v1, c1, b, theta):
        return False
    return (v0 if v0 > 0.0 else 0.0) + (c0 if c0 > 0.0 else 0.0) * km >= theta


@jit
def exact_interval(v, cur, v1, c1, t0, t1, t_end, ea_k, eb_k, kap_k, kmax_k, a, b, theta,
                   method, single_spike, max_spikes, n, out_t, out_dv):
    """Exact processing of one input-free interval [t0, t1) from state (v, cur).

    (v1, c1) is the state at t1 without resets (v e^{-bL} + cur kappa(L),
    cur e^{-aL}): when V(t1) >= theta and dV/dt(t1) >= 0, V rises over the
    whole interval (dV/dt e^{bs} decreases when I > 0), so the first crossing
    is bracketed by [t0, t1] without locating the maximum.

    Finds every spike with ``first_crossing`` (after a spike V = 0, I is kept,
    and the search restarts from the spike time, so any number of spikes per
    interval is found), records spike times and dV/dt just before each spike
    (I - b*theta, the denominator of the implicit-function gradient) while
    ``out_t``/``out_dv`` have room (``spike_slope``), and propagates the state
    to t1.
    Returns (v, cur, n, can_fire); can_fire is False after the one spike of
    single-spike mode or once n exceeds max_spikes.
    """
    cap = out_t.shape[0]
    tc = t0
    can_fire = True
    while True:
        if tc == t0 and rises_through(v, v1, c1, b, theta):
            s = crossing_on_rise(v, cur, t1 - t0, v1, a, b, theta, method)
        else:
            s = first_crossing(v, cur, t1 - tc, a, b, theta, method)
        if s == math.inf:
            break
        ts = tc + s
        if ts >= t_end:
            break
        cur = cur * math.exp(-a * s)
        if n < cap:
            out_t[n] = ts
            out_dv[n] = spike_slope(cur, a, b, theta)
        n += 1
        v = 0.0
        tc = ts
        if single_spike or n > max_spikes:
            can_fire = False
            break
        if cur * kmax_k < theta:
            break  # from V = 0, V <= I * max kappa < theta for the rest of the interval
    if tc == t0:
        v = v * eb_k + cur * kap_k
        cur = cur * ea_k
    else:  # V = 0 exactly after the spike at tc, and 0.0 * e^{-b rest} == 0.0
        e_a, kap = decay_ak(t1 - tc, a, b)
        v = 0.0 + cur * kap
        cur = cur * e_a
    return v, cur, n, can_fire


@jit
def spike_slope(cur, a, b, theta):
    """dV/dt = I - b theta just before a spike (units: V per time), at least
    sqrt(a I eps theta).

    Near V's maximum V'' = -a I, so a crossing that V exceeds by h = V_max - theta
    has V' = sqrt(2 a I h). float64 resolves crossings down to h ~ eps theta / 2
    (half an ulp of theta), and at such a grazing crossing I - b theta cancels to
    0 (or a rounding-sized negative value), which would make the gradient of the
    implicit-function theorem infinite or of the wrong sign. The floor is V' at
    h = eps theta / 2; it is far above the rounding noise of I - b theta
    (~eps I) and leaves every crossing that V clears by more than about an ulp
    untouched.
    """
    slope = cur - b * theta
    floor = math.sqrt(a * cur * 2.220446049250313e-16 * theta)
    return slope if slope > floor else floor


@jit
def adjoint_back(li, lv, gap, a, b):
    """Adjoint state moved back by ``gap`` (transposed state transition)."""
    e_a, e_b, kap = decay(gap, a, b)
    return li * e_a + kap * lv, lv * e_b


@jit
def adjoint_spike(lv, g, slope, min_slope, b, theta):
    """lambda_V just before a spike: lambda_V - (g - theta b lambda_V) / max(V', min_slope)."""
    if slope < min_slope:
        slope = min_slope
    return lv - (g - theta * b * lv) / slope


@jit
def neuron_forward(j, times, ids, ea, eb, kap, kmax, start, stop, t_end, w, a, b, theta,
                   single_spike, method, max_spikes, out_t, out_dv):
    """Exact event scan of neuron j (paper eqs. 11-19, any p).

    At each input the current jumps by w; over the following interval the state
    is propagated in closed form. Inputs at the same time only add their
    currents: the zero-length interval between them leaves V and I as they are
    (e^0 = 1, kappa(0) = 0). An interval is examined exactly
    (``exact_interval``) only when the sound filter ``needs_exact`` says a
    spike may hide in it (``eventsim._layer.layer_forward`` inlines the same
    test in branch-free form; keep the two in step). In single-spike mode the
    neuron keeps integrating after its one spike but never fires again.

    Returns (spike count, V(t_end)); stops after ``max_spikes + 1`` spikes.
    """
    v = 0.0
    cur = 0.0
    n = 0
    can_fire = True
    for k in range(start, stop):
        c0 = cur + w[ids[k], j]
        t1 = times[k + 1] if k + 1 < stop else t_end
        if t1 == times[k]:  # simultaneous inputs: the currents add, V does not move
            cur = c0
            continue
        v0 = v
        v = v0 * eb[k] + c0 * kap[k]
        cur = c0 * ea[k]
        if can_fire and needs_exact(v0, c0, v, cur, kmax[k], b, theta):
            v, cur, n, can_fire = exact_interval(v0, c0, v, cur, times[k], t1, t_end, ea[k],
                                                 eb[k], kap[k], kmax[k], a, b, theta, method,
                                                 single_spike, max_spikes, n, out_t, out_dv)
            if n > max_spikes:
                return n, v
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

    - between events (transposed state transition, ``adjoint_back``):
      lambda_I <- e^{-aL} lambda_I + kappa(L) lambda_V,  lambda_V <- e^{-bL} lambda_V
    - at spike n, with g_n = dL/ds_n from downstream (``adjoint_spike``):
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
                li, lv = adjoint_back(li, lv, tcur - spk_t[m], a, b)
                lv = adjoint_spike(lv, spk_g[m], spk_dv[m], min_slope, b, theta)
                tcur = spk_t[m]
                m -= 1
            li, lv = adjoint_back(li, lv, tcur - t0, a, b)
        else:
            li = li * ea[k] + kap[k] * lv
            lv = lv * eb[k]
        tcur = t0
        li_out[k - start] = li
        lt_out[k - start] = a * li - lv
