"""Scalar maths of one LIF neuron between two events.

Every function here is a plain ``@njit`` scalar function: no allocation, no
exceptions, ``error_model="numpy"``, and conditional expressions instead of the
builtins min/max (which numba's CUDA target cannot compile with two arguments).
The CPU kernels call them directly and the
CUDA kernels (``eventsim._cuda``) compile the very same functions as device
functions, so the maths exists once.

Notation (rates instead of time constants): ``a = 1/tau_i``, ``b = 1/tau_v``.
A neuron's state at the start of an interval without input is (V0, I0); after
``s`` time units (paper eqs. 5-12 written relative to the interval start, which
keeps every exponent <= 0 and never overflows, unlike the paper's z = e^{t/tau_i})::

    I(s) = I0 e^{-a s}
    V(s) = V0 e^{-b s} + I0 kappa(s)
    kappa(s) = (e^{-a s} - e^{-b s}) / (b - a)       (-> s e^{-b s} when a == b)

V is a sum of two exponentials, so on any interval it has at most one interior
extremum; this is what makes the crossing search below complete.
"""

import math

from numba import njit

jit = njit(cache=True, error_model="numpy")

#: method codes shared by every kernel
ROOT = 0
CLOSED_FORM = 1


@jit
def kappa(s, a, b):
    """Post-synaptic potential kernel kappa(s) = (e^{-as} - e^{-bs}) / (b - a) (eq. 8 scaled).

    Written as e^{-min(a,b) s} (1 - e^{-|b-a| s}) / |b-a| with expm1, so it is
    accurate for p near 1, exact (s e^{-bs}) for p == 1, and never overflows.
    Units: time. kappa(0) = 0, kappa >= 0.
    """
    m = a if a < b else b  # conditional, not min(): see eventsim._cuda
    return kappa_from(math.exp(-m * s), s, a, b)


@jit
def kappa_from(e_m, s, a, b):
    """kappa(s) given e_m = e^{-min(a,b) s}, one of the two decay factors, so that
    callers that need those factors too evaluate it once."""
    d = abs(b - a)
    if d == 0.0:
        return s * e_m
    return e_m * (-math.expm1(-d * s)) / d


@jit
def decay(s, a, b):
    """(e^{-as}, e^{-bs}, kappa(s)), bit for bit math.exp(-a*s), math.exp(-b*s) and
    kappa(s, a, b) from 3 transcendental calls instead of 4."""
    e_a = math.exp(-a * s)
    e_b = e_a if a == b else math.exp(-b * s)
    return e_a, e_b, kappa_from(e_a if a < b else e_b, s, a, b)


@jit
def decay_ak(s, a, b):
    """(e^{-as}, kappa(s)), bit for bit math.exp(-a*s) and kappa(s, a, b) (no e^{-bs}
    unless kappa needs it)."""
    e_a = math.exp(-a * s)
    return e_a, kappa_from(e_a if a <= b else math.exp(-b * s), s, a, b)


@jit
def readout_slope(s, a, b):
    """d kappa(t_out - t)/dt at s = t_out - t: a kappa(s) - e^{-bs} (eq. 20 differentiated
    in the spike time t; kappa' = e^{-bs} - a kappa). Units: 1 (per unit weight)."""
    return a * kappa(s, a, b) - math.exp(-b * s)


@jit
def kappa_peak(a, b):
    """Time at which kappa peaks: ln(b/a)/(b-a), or 1/a when a == b."""
    c = b - a
    if c == 0.0:
        return 1.0 / a
    return math.log1p(c / a) / c


@jit
def kappa_max(length, at_end, a, b):
    """max of kappa over [0, length], given at_end = kappa(length): an upper bound
    used to skip intervals cheaply (kappa rises up to its peak, then falls)."""
    peak = kappa_peak(a, b)
    if peak < length:
        at_peak = kappa(peak, a, b)
        return at_peak if at_peak > at_end else at_end
    return at_end


@jit
def membrane_at(s, v0, i0, a, b):
    """V(s) = V0 e^{-bs} + I0 kappa(s): membrane potential s after the interval start."""
    return v0 * math.exp(-b * s) + i0 * kappa(s, a, b)


@jit
def _log1p_over(x, c):
    """log(1 + c x) / c, continuous at c == 0 (value x)."""
    if c == 0.0:
        return x
    return math.log1p(c * x) / c


@jit
def time_of_max(v0, i0, a, b):
    """Time of the maximum of V(s), for I0 > 0 and dV/ds(0) = I0 - b V0 > 0.

    dV/ds = 0 at e^{(b-a)s} = (b/a)(1 - (b-a) V0 / I0), i.e.
    s* = [log1p((b-a)/a) + log1p(-(b-a) V0/I0)] / (b-a), which tends to
    1/a - V0/I0 as b -> a. Returns +inf when V rises for ever.
    """
    c = b - a
    x = -v0 / i0
    if c * x <= -1.0:
        return math.inf
    return _log1p_over(1.0 / a, c) + _log1p_over(x, c)


@jit
def _root_crossing(v0, i0, hi, vhi, a, b, theta):
    """First s in (0, hi] with V(s) = theta, V increasing on [0, hi], V(0) < theta <= V(hi).

    Safeguarded Newton (bisection whenever Newton leaves the bracket); runs to
    full float64 precision. dV/ds = I(s) - b V(s).
    """
    lo = 0.0
    flo = v0 - theta
    fhi = vhi - theta
    if fhi == 0.0:
        return hi
    s = lo - flo * (hi - lo) / (fhi - flo)
    if not (lo < s < hi):
        s = 0.5 * (lo + hi)
    for _ in range(200):
        v = membrane_at(s, v0, i0, a, b)
        f = v - theta
        if f == 0.0:
            return s
        if f < 0.0:
            lo = s
        else:
            hi = s
        slope = i0 * math.exp(-a * s) - b * v
        step_ok = False
        if slope > 0.0:
            s_new = s - f / slope
            step_ok = lo < s_new < hi
        if not step_ok:
            s_new = 0.5 * (lo + hi)
        if s_new == s or hi - lo <= 4.0 * 2.220446049250313e-16 * hi:
            return hi if f < 0.0 else s
        s = s_new
    return hi


@jit
def _closed_form_crossing(v0, i0, hi, a, theta):
    """First crossing for p == 2 (b = 2a), paper eq. 19 relative to the interval start.

    With x = e^{-a s}: V = A x^2 + B x, A = V0 - I0/a, B = I0/a. A rising
    crossing has A < 0 and the first one is the larger root
    x = (B + sqrt(D)) / (-2A), D = B^2 + 4 A theta; s = -ln(x)/a, clipped into
    (0, hi]. For a crossing soon after the interval start (x near 1) ln(x) would
    lose the digits of 1 - x, so there s = -log1p(-y)/a with
    y = 1 - x = 2 (theta - V0) / (sqrt(D) + B - 2 V0), the same root without
    cancellation: both terms of the denominator are >= 0, since
    B - 2 V0 = (dV/ds at s = 0) / a > 0 on a rise.
    """
    big_a = v0 - i0 / a
    big_b = i0 / a
    disc = big_b * big_b + 4.0 * big_a * theta
    if disc < 0.0:
        disc = 0.0
    root = math.sqrt(disc)
    x = (big_b + root) / (-2.0 * big_a)
    if x > 0.5:
        s = -math.log1p(-2.0 * (theta - v0) / (root + big_b - 2.0 * v0)) / a
    else:
        s = -math.log(x) / a
    if s > hi:
        s = hi
    if s < 0.0:
        s = 0.0
    return s


@jit
def first_crossing(v0, i0, length, a, b, theta, method):
    """Time s in [0, length] of the first threshold crossing, or +inf if none.

    Complete: since V has at most one extremum (a maximum when I0 > 0), the
    crossing exists iff V reaches theta at min(s*, length); it is then the
    unique root on the increasing branch [0, min(s*, length)].
    - I0 <= 0: V <= max(V0, 0) e^{-bs} < theta, never.
    - dV/ds(0) <= 0 with I0 > 0: V decreases for ever, never.
    Tangency convention: V touching theta (V == theta at the maximum) is a spike.
    A state already at or above threshold (rounding at an interval boundary)
    fires immediately (s = 0).
    """
    if v0 >= theta:
        return 0.0
    if i0 <= 0.0 or i0 - b * v0 <= 0.0:
        return math.inf
    s_max = time_of_max(v0, i0, a, b)
    hi = s_max if s_max < length else length
    vhi = membrane_at(hi, v0, i0, a, b)
    if vhi < theta:
        return math.inf
    return crossing_on_rise(v0, i0, hi, vhi, a, b, theta, method)


@jit
def crossing_on_rise(v0, i0, hi, vhi, a, b, theta, method):
    """The crossing in (0, hi] when V rises on [0, hi] from V0 < theta to vhi >= theta:
    eq. 19 for p == 2 (method CLOSED_FORM), else safeguarded Newton."""
    if method == CLOSED_FORM:
        return _closed_form_crossing(v0, i0, hi, a, theta)
    return _root_crossing(v0, i0, hi, vhi, a, b, theta)
