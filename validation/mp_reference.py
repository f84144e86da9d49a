"""40-digit references (mpmath) for spike times, the loss of eq. 24 and its gradient.

Independent of eventsim. The state (I, V) of one neuron is carried from event
to event in closed form, in 40-digit arithmetic. After an input at time t0 (or
a reset), with s = t - t0, I(s) = I0 e^{-s/tau_I} and

    V(s) = a e^{-s/tau_I} + (V0 - a) e^{-s/tau_V},   a = I0 / (1/tau_V - 1/tau_I)
    V(s) = (V0 + I0 s) e^{-s/tau}                    (tau_I = tau_V = tau)

which has at most one critical point. Each inter-event interval is split there
into monotone pieces; on the first piece whose end reaches threshold, 160
bisection steps place the crossing to about 1e-48 times the interval length.
At a spike V resets to 0 and I is kept (eqs. 1-4). Everything is in units of
the time constants' unit (times, tau_I, tau_V) and of the threshold (V).

For p = tau_I/tau_V near 1 the two-exponential form cancels (about
-log10|1 - 1/p| digits), so every function here works with that many digits
more than 40 (``working_digits``); without them the reference, not the
engine, would be the less accurate at p = 1 + 1e-12.

``network`` runs a recurrent network (any topology, self-connections, a
transmission delay) with ``eventsim.simulate_network``'s documented semantics
for simultaneous events: every neuron is carried to every event in the same
arithmetic, so equal neurons cross at equal times.

``loss`` recomputes eq. 24 (cross-entropy of softmax(v_out), dead-neuron
penalty with given flags, sigma * mean(v_out**2); batch means, as
``eventsim.Network.loss_and_grad``) on top of these spike trains, and
``loss_gradient`` (weights) and ``input_gradient`` (input spike times) take
40-digit central differences of it, so truncation
(h^2 ~ 1e-36) and rounding (1e-40 / h ~ 1e-22) errors lie far below float64's.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np

DIGITS = 40  # significant digits kept (see working_digits)
BISECTIONS = 160


def working_digits(tau_i, tau_v) -> int:
    """DIGITS plus the decimal digits that the two-exponential form of V loses to
    cancellation when tau_i is close to tau_v: a = I0 / (1/tau_V - 1/tau_I) is
    then large and V = a e^{-s/tau_I} + (V0 - a) e^{-s/tau_V} a small difference
    of large terms. With them every result keeps about DIGITS significant
    digits for any p != 1 (p == 1 has its own formula)."""
    if tau_i == tau_v:
        return DIGITS
    with mp.workdps(DIGITS):
        rate_i, rate_v = 1 / mp.mpf(tau_i), 1 / mp.mpf(tau_v)
        lost = mp.log10(max(rate_i, rate_v) / abs(rate_v - rate_i))
    return DIGITS + max(0, int(mp.ceil(lost)))


def _potential(s, i0, v0, tau_i, tau_v):
    if tau_i == tau_v:
        return (v0 + i0 * s) * mp.exp(-s / tau_i)
    a = i0 / (1 / tau_v - 1 / tau_i)
    return a * mp.exp(-s / tau_i) + (v0 - a) * mp.exp(-s / tau_v)


def _critical_point(i0, v0, tau_i, tau_v):
    """The one s with dV/ds = 0, or None."""
    if i0 == 0:
        return None
    if tau_i == tau_v:
        return tau_i - v0 / i0
    a = i0 / (1 / tau_v - 1 / tau_i)
    ratio = -(v0 - a) * tau_i / (a * tau_v)
    if ratio <= 0:
        return None
    return mp.log(ratio) / (1 / tau_v - 1 / tau_i)


def _first_crossing(i0, v0, tau_i, tau_v, length, threshold):
    """Smallest s in (0, length] with V(s) >= threshold, or None."""
    knots = [mp.mpf(0)]
    s_crit = _critical_point(i0, v0, tau_i, tau_v)
    if s_crit is not None and 0 < s_crit < length:
        knots.append(s_crit)
    knots.append(length)
    for lo, hi in zip(knots[:-1], knots[1:]):
        if (_potential(lo, i0, v0, tau_i, tau_v) < threshold
                <= _potential(hi, i0, v0, tau_i, tau_v)):
            for _ in range(BISECTIONS):
                mid = (lo + hi) / 2
                if _potential(mid, i0, v0, tau_i, tau_v) >= threshold:
                    hi = mid
                else:
                    lo = mid
            return hi
    return None


def neuron(times, weights, tau_i, tau_v, threshold=1, t_end=1, single_spike=False):
    """One neuron driven by input spikes at ``times`` with ``weights``.

    Inputs at or after t_end (and +inf) are ignored; a spike at exactly t_end
    is not counted. Returns (spike times, V(t_end)) as mpmath numbers.
    """
    with mp.workdps(working_digits(tau_i, tau_v)):
        tau_i, tau_v, threshold, t_end = (mp.mpf(v) for v in (tau_i, tau_v, threshold, t_end))
        events = sorted(((mp.mpf(t), mp.mpf(w)) for t, w in zip(times, weights)
                         if mp.mpf(t) < t_end), key=lambda e: e[0])
        events.append((t_end, mp.mpf(0)))
        t, i_syn, v = events[0][0], mp.mpf(0), mp.mpf(0)
        spikes = []
        for t_next, w in events:
            while True:
                s = None
                if not (single_spike and spikes):
                    s = _first_crossing(i_syn, v, tau_i, tau_v, t_next - t, threshold)
                if s is None or t + s >= t_end:
                    v = _potential(t_next - t, i_syn, v, tau_i, tau_v)
                    i_syn *= mp.exp(-(t_next - t) / tau_i)
                    t = t_next
                    break
                i_syn *= mp.exp(-s / tau_i)
                v = mp.mpf(0)
                t += s
                spikes.append(t)
            i_syn += w
        return spikes, v


def _peak(i0, v0, tau_i, tau_v, length):
    """(s, V(s)) at the maximum of V over [0, length]."""
    knots = [mp.mpf(0), length]
    s_crit = _critical_point(i0, v0, tau_i, tau_v)
    if s_crit is not None and 0 < s_crit < length:
        knots.append(s_crit)
    return max(((s, _potential(s, i0, v0, tau_i, tau_v)) for s in knots), key=lambda e: e[1])


def network(times, ids, w_in, w_rec, tau_i, tau_v, threshold=1, t_end=1, delay=0,
            single_spike=False, margins=None):
    """Recurrent network of N neurons (``eventsim.simulate_network``'s semantics).

    External input spike k (time ``times[k]``, input ``ids[k]``) adds
    w_in[ids[k], j] to the current of every neuron j; a spike of neuron i at t
    adds w_rec[i, j] to neuron j's current at t + delay (w_in, w_rec dense or
    scipy.sparse; self-connections allowed). Inputs and arrivals at or after
    t_end are ignored, a spike at exactly t_end is not counted, and in
    single-spike mode a neuron fires at most once.

    Every neuron is carried to every event time, where (1) each neuron with
    V >= threshold fires (V continuous: whatever else happens at t cannot undo
    a crossing at t) and resets, then (2) every arrival at t is added:
    external inputs, recurrent spikes sent at t - delay, and with delay 0 the
    spikes of step (1); a neuron's arrivals at t are summed in sorted order
    before they join its current. Identical neurons thus follow identical
    arithmetic and cross at identical times. The next event is the earliest of
    the next input, the next recurrent arrival and the first crossing before
    them of any neuron that may fire (``_first_crossing``).

    If ``margins`` is a list, (time, neuron, V_peak - threshold) is appended for
    every spike (its time; V's maximum over the interval up to the next input or
    arrival) and for every interval without a crossing whose maximum comes
    within 1e-9 threshold of it (the maximum's time), to tell grazing crossings
    from errors.

    Returns [(time, neuron)] sorted by (time, neuron), times as mpmath numbers.
    """
    if hasattr(w_in, "toarray"):
        w_in = w_in.toarray()
    if hasattr(w_rec, "toarray"):
        w_rec = w_rec.toarray()
    with mp.workdps(working_digits(tau_i, tau_v)):
        tau_i, tau_v, threshold, t_end, delay = (
            mp.mpf(v) for v in (tau_i, tau_v, threshold, t_end, delay))
        w_in = [[mp.mpf(float(x)) for x in row] for row in np.asarray(w_in, dtype=float)]
        w_rec = [[mp.mpf(float(x)) for x in row] for row in np.asarray(w_rec, dtype=float)]
        n = len(w_rec)
        inputs = sorted((mp.mpf(t), int(i)) for t, i in zip(times, ids) if mp.mpf(t) < t_end)
        arrivals = []                                   # (time, sender) of recurrent spikes
        i_syn, v = [mp.mpf(0)] * n, [mp.mpf(0)] * n
        can_fire = [True] * n
        t_now, spikes = mp.mpf(0), []
        while True:
            t_event = min([t_end] + [t for t, _ in inputs[:1]] + [t for t, _ in arrivals[:1]])
            length = t_event - t_now
            gaps = {}
            for j in range(n):
                if can_fire[j]:
                    s = _first_crossing(i_syn[j], v[j], tau_i, tau_v, length, threshold)
                    if s is not None:
                        gaps[j] = s
            if gaps and min(gaps.values()) < length:
                gap = min(gaps.values())
                t = min(t_now + gap, t_event)
            else:
                gap, t = length, t_event
            if t >= t_end:
                break
            if margins is not None:
                for j in range(n):
                    if not can_fire[j]:
                        continue
                    s_peak, v_peak = _peak(i_syn[j], v[j], tau_i, tau_v, length)
                    if j in gaps and gaps[j] <= gap:
                        margins.append((t, j, v_peak - threshold))
                    elif j not in gaps and abs(v_peak - threshold) < mp.mpf("1e-9") * threshold:
                        margins.append((t_now + s_peak, j, v_peak - threshold))
            for j in range(n):                          # carry everyone to t
                v[j] = _potential(gap, i_syn[j], v[j], tau_i, tau_v)
                i_syn[j] *= mp.exp(-gap / tau_i)
            t_now = t
            fired = [j for j in range(n) if can_fire[j] and v[j] >= threshold]
            for j in fired:                             # (1) crossings at t
                v[j] = mp.mpf(0)
                spikes.append((t, j))
                if single_spike:
                    can_fire[j] = False
            rows = [w_rec[j] for j in fired if delay == 0]  # (2) arrivals at t
            while arrivals and arrivals[0][0] == t:
                rows.append(w_rec[arrivals.pop(0)[1]])
            while inputs and inputs[0][0] == t:
                rows.append(w_in[inputs.pop(0)[1]])
            for j in range(n):  # summed in sorted order: equal neurons stay equal
                i_syn[j] += mp.fsum(sorted(row[j] for row in rows))
            if delay > 0:
                arrivals.extend((t + delay, j) for j in fired if t + delay < t_end)
                arrivals.sort()
        return spikes


def _kappa(s, tau_i, tau_v):
    """Potential at lag s >= 0 after a unit input into a neuron that never fires."""
    return _potential(s, mp.mpf(1), mp.mpf(0), tau_i, tau_v)


def kappa_peak(tau_i, tau_v):
    """max_s of the unit-input potential (the kernel's peak), in 40 digits."""
    with mp.workdps(working_digits(tau_i, tau_v)):
        tau_i, tau_v = mp.mpf(tau_i), mp.mpf(tau_v)
        return _kappa(_critical_point(mp.mpf(1), mp.mpf(0), tau_i, tau_v), tau_i, tau_v)


def loss(x, labels, weights, tau_i, tau_v, threshold=1, t_out=1, single_spike=False,
         dead_penalty=0.0, output_l2=0.0, dead_flags=None):
    """Eq. 24 in 40 digits for float or mpmath weight matrices ``weights`` (one per layer).

    x: (B, n_in) input spike times (inf = none); dead_flags: one boolean array
    per hidden layer (needed when dead_penalty != 0).
    """
    with mp.workdps(working_digits(tau_i, tau_v)):
        tau_i, tau_v, t_out = mp.mpf(tau_i), mp.mpf(tau_v), mp.mpf(t_out)
        total = mp.mpf(0)
        for sample, label in zip(x, labels):
            trains = [[mp.mpf(t)] if mp.isfinite(t) else [] for t in sample]
            for layer, w in enumerate(weights[:-1]):
                results = [neuron([t for tr in trains for t in tr],
                                  [w[i][j] for i, tr in enumerate(trains) for _ in tr],
                                  tau_i, tau_v, threshold, t_out, single_spike)
                           for j in range(len(w[0]))]
                trains = [spikes for spikes, _ in results]
                if dead_penalty:
                    flags = dead_flags[layer]
                    total += dead_penalty * mp.fsum(threshold - v for (_, v), f in
                                                    zip(results, flags) if f) / len(results)
            w = weights[-1]
            v_out = [mp.fsum(w[i][o] * _kappa(t_out - t, tau_i, tau_v)
                             for i, tr in enumerate(trains) for t in tr if t < t_out)
                     for o in range(len(w[0]))]
            top = max(v_out)
            log_norm = top + mp.log(mp.fsum(mp.exp(v - top) for v in v_out))
            total += log_norm - v_out[int(label)]
            total += output_l2 * mp.fsum(v * v for v in v_out) / len(v_out)
        return total / len(labels)


def _central_difference(values, index, evaluate, h):
    centre = values[index[0]][index[1]]
    values[index[0]][index[1]] = centre + h
    up = evaluate()
    values[index[0]][index[1]] = centre - h
    down = evaluate()
    values[index[0]][index[1]] = centre
    return (up - down) / (2 * h)


def loss_gradient(x, labels, weights, entries, step="1e-18", **loss_kwargs):
    """dL/dw at ``entries`` [(layer, i, j), ...] by 40-digit central differences."""
    with mp.workdps(working_digits(loss_kwargs["tau_i"], loss_kwargs["tau_v"])):
        h = mp.mpf(step)
        w_mp = [[[mp.mpf(float(v)) for v in row] for row in np.asarray(w)] for w in weights]
        return [_central_difference(w_mp[layer], (i, j),
                                    lambda: loss(x, labels, w_mp, **loss_kwargs), h)
                for layer, i, j in entries]


def input_gradient(x, labels, weights, entries, step="1e-18", **loss_kwargs):
    """dL/d(input spike time) at ``entries`` [(sample, input), ...] by 40-digit central
    differences."""
    with mp.workdps(working_digits(loss_kwargs["tau_i"], loss_kwargs["tau_v"])):
        h = mp.mpf(step)
        x_mp = [[mp.mpf(float(t)) for t in row] for row in np.asarray(x)]
        return [_central_difference(x_mp, (b, i),
                                    lambda: loss(x_mp, labels, weights, **loss_kwargs), h)
                for b, i in entries]
