"""Event-driven simulation of a recurrent (any-topology) LIF network.

A priority queue holds every neuron's predicted next threshold crossing;
external input spikes come from a sorted list, and recurrent spikes arrive
after a uniform ``delay`` (so their arrivals are the output spike list itself,
read in order). At each event only the neurons it reaches are advanced
(closed-form propagation from their own last update time) and re-predicted
with the complete crossing search of ``eventsim._math.first_crossing``.
Cost: O((input spikes x fan-out + output spikes x fan-out) log N).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ._lif import LIF
from ._math import first_crossing, jit, kappa
from ._simulate import DEFAULT_MAX_SPIKES, SpikeLimitError, prepare_inputs
from ._spikes import Spikes
from ._validate import (check_bool, check_ids, check_lif, check_max_spikes, check_method,
                        check_nonnegative, check_spike_times, check_t_end, check_weights,
                        is_real)


@jit
def _before(x, y, pred):
    """Heap order: earlier predicted time first, ties broken by neuron id."""
    return pred[x] < pred[y] or (pred[x] == pred[y] and x < y)


@jit
def _heap_set(j, key, heap, pos, pred):
    """Change neuron j's key in the indexed binary min-heap (heap[pos[j]] == j)."""
    pred[j] = key
    n = heap.shape[0]
    i = pos[j]
    while i > 0:  # sift up
        parent = (i - 1) // 2
        if not _before(j, heap[parent], pred):
            break
        heap[i] = heap[parent]
        pos[heap[i]] = i
        i = parent
    while True:  # sift down
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(heap[child + 1], heap[child], pred):
            child += 1
        if not _before(heap[child], j, pred):
            break
        heap[i] = heap[child]
        pos[heap[i]] = i
        i = child
    heap[i] = j
    pos[j] = i


@jit
def _advance(q, t, v, cur, t_last, a, b):
    gap = t - t_last[q]
    if gap > 0.0:
        v[q] = v[q] * math.exp(-b * gap) + cur[q] * kappa(gap, a, b)
        cur[q] = cur[q] * math.exp(-a * gap)
        t_last[q] = t


@jit
def _predict(q, v, cur, t_last, can_fire, t_end, a, b, theta, method, heap, pos, pred):
    key = math.inf
    if can_fire[q]:
        s = first_crossing(v[q], cur[q], t_end - t_last[q], a, b, theta, method)
        if s != math.inf and t_last[q] + s < t_end:
            key = t_last[q] + s
    _heap_set(q, key, heap, pos, pred)


@jit
def _mark(q, touched, n_touched, is_touched):
    """Put neuron q on the list of neurons to re-predict at the current time (once);
    returns the list's new length."""
    if not is_touched[q]:
        is_touched[q] = True
        touched[n_touched] = q
        n_touched += 1
    return n_touched


@jit
def _receive(src, t, w_ptr, w_idx, w_val, v, cur, t_last, a, b, touched, n_touched,
             is_touched):
    """Spike of row ``src`` of a CSR weight matrix arriving at time t: advance each
    target to t and add its weight to the current. The targets are re-predicted
    later (``_predict``), once every arrival at t has been added; returns the new
    number of entries in ``touched``."""
    for e in range(w_ptr[src], w_ptr[src + 1]):
        q = w_idx[e]
        _advance(q, t, v, cur, t_last, a, b)
        cur[q] += w_val[e]
        n_touched = _mark(q, touched, n_touched, is_touched)
    return n_touched


@jit
def _receive_together(in_lo, in_hi, in_i, win_ptr, win_idx, win_val, rec_lo, rec_hi, out_j,
                      wrec_ptr, wrec_idx, wrec_val, t, v, cur, t_last, a, b, inc, touched,
                      n_touched, is_touched):
    """Several spikes arriving at time t (external inputs in_i[in_lo:in_hi], recurrent
    spikes of out_j[rec_lo:rec_hi]): like ``_receive`` for each, but every target
    sums its weights in increasing order of value (in ``inc``, all zeros on entry
    and on return) and adds the sum to its current in one step, so that the new
    current does not depend on the order of the spikes. Float addition is not
    associative: two equal neurons receiving the same weights in different orders
    would otherwise drift apart by an ulp, and with delay 0 an inhibitory spike
    could then reach one of them an ulp before its crossing instead of with it.
    Returns the new number of entries in ``touched``."""
    m = 0
    for k in range(in_lo, in_hi):
        m += win_ptr[in_i[k] + 1] - win_ptr[in_i[k]]
    for s in range(rec_lo, rec_hi):
        m += wrec_ptr[out_j[s] + 1] - wrec_ptr[out_j[s]]
    q_buf = np.empty(m, np.int64)
    w_buf = np.empty(m)
    m = 0
    for k in range(in_lo, in_hi):
        for e in range(win_ptr[in_i[k]], win_ptr[in_i[k] + 1]):
            q_buf[m] = win_idx[e]
            w_buf[m] = win_val[e]
            m += 1
    for s in range(rec_lo, rec_hi):
        for e in range(wrec_ptr[out_j[s]], wrec_ptr[out_j[s] + 1]):
            q_buf[m] = wrec_idx[e]
            w_buf[m] = wrec_val[e]
            m += 1
    for e in np.argsort(w_buf, kind="mergesort"):
        q = q_buf[e]
        _advance(q, t, v, cur, t_last, a, b)
        inc[q] += w_buf[e]
        n_touched = _mark(q, touched, n_touched, is_touched)
    for e in range(m):
        q = q_buf[e]
        cur[q] += inc[q]  # the first time: the whole sum; then + 0.0
        inc[q] = 0.0
    return n_touched


@jit
def network_kernel(in_t, in_i, win_ptr, win_idx, win_val, wrec_ptr, wrec_idx, wrec_val,
                   n_neurons, a, b, theta, t_end, delay, single_spike, method, max_spikes):
    """Returns (spike times, spike ids, status); status = 1 + neuron that hit max_spikes, or 0.

    Each time t at which something happens is handled in three steps, so that the
    result does not depend on the order of simultaneous events (nor on neuron or
    input ids): (1) every neuron whose crossing was predicted at t fires (V(t) is
    continuous, so an arrival at t cannot undo a crossing at t); (2) every spike
    arriving at t (external inputs, recurrent spikes after ``delay``, and with
    delay 0 the spikes of step 1) is added to its targets' currents, as one jump
    per target: the sum of its weights taken in increasing order of value (so that
    the rounded result, too, is independent of the events' order: equal neurons
    stay equal); (3) the
    neurons of steps 1 and 2 are re-predicted from their state after t. A
    crossing predicted in step 3 is later than t; if it rounds to t, it fires in
    the next round at t, after all of t's arrivals.
    """
    v = np.zeros(n_neurons)
    cur = np.zeros(n_neurons)
    t_last = np.zeros(n_neurons)
    pred = np.full(n_neurons, np.inf)
    heap = np.arange(n_neurons)
    pos = np.arange(n_neurons)
    can_fire = np.ones(n_neurons, np.bool_)
    fired = np.zeros(n_neurons, np.int64)
    touched = np.empty(n_neurons, np.int64)
    is_touched = np.zeros(n_neurons, np.bool_)
    inc = np.zeros(n_neurons)
    out_t = np.empty(1024)
    out_j = np.empty(1024, np.int64)
    n_spk = 0
    k = 0
    arrived = 0
    while True:
        t_pred = pred[heap[0]] if n_neurons > 0 else math.inf
        t_ext = in_t[k] if k < in_t.shape[0] else math.inf
        t_arr = out_t[arrived] + delay if (delay > 0.0 and arrived < n_spk) else math.inf
        t = min(t_pred, min(t_ext, t_arr))
        if not t < t_end:
            break
        n_touched = 0
        first_new = n_spk
        while n_neurons > 0 and pred[heap[0]] == t:    # (1) crossings at t
            j = heap[0]
            _advance(j, t, v, cur, t_last, a, b)
            v[j] = 0.0
            if n_spk == out_t.shape[0]:
                grown_t = np.empty(2 * n_spk)
                grown_j = np.empty(2 * n_spk, np.int64)
                grown_t[:n_spk] = out_t
                grown_j[:n_spk] = out_j
                out_t = grown_t
                out_j = grown_j
            out_t[n_spk] = t
            out_j[n_spk] = j
            n_spk += 1
            fired[j] += 1
            if fired[j] > max_spikes:
                return out_t[:n_spk], out_j[:n_spk], j + 1
            if single_spike:
                can_fire[j] = False
            _heap_set(j, math.inf, heap, pos, pred)
            n_touched = _mark(j, touched, n_touched, is_touched)
        k_hi = k                                       # (2) arrivals at t
        while k_hi < in_t.shape[0] and in_t[k_hi] == t:
            k_hi += 1
        if delay == 0.0:
            rec_lo = first_new
            rec_hi = n_spk
        else:
            rec_lo = arrived
            rec_hi = arrived
            while rec_hi < n_spk and out_t[rec_hi] + delay == t:
                rec_hi += 1
            arrived = rec_hi
        if (k_hi - k) + (rec_hi - rec_lo) > 1:
            n_touched = _receive_together(k, k_hi, in_i, win_ptr, win_idx, win_val, rec_lo,
                                          rec_hi, out_j, wrec_ptr, wrec_idx, wrec_val, t, v,
                                          cur, t_last, a, b, inc, touched, n_touched,
                                          is_touched)
        elif k_hi > k:
            n_touched = _receive(in_i[k], t, win_ptr, win_idx, win_val, v, cur, t_last, a, b,
                                 touched, n_touched, is_touched)
        elif rec_hi > rec_lo:
            n_touched = _receive(out_j[rec_lo], t, wrec_ptr, wrec_idx, wrec_val, v, cur,
                                 t_last, a, b, touched, n_touched, is_touched)
        k = k_hi
        for m in range(n_touched):                     # (3) new predictions
            q = touched[m]
            is_touched[q] = False
            _predict(q, v, cur, t_last, can_fire, t_end, a, b, theta, method, heap, pos, pred)
    return out_t[:n_spk], out_j[:n_spk], 0


def _as_csr(matrix, name: str, shape):
    """(indptr, indices, data, shape) of a CSR float64 copy of a dense or
    scipy.sparse weight matrix, explicit zeros dropped and indices sorted."""
    if sp.issparse(matrix):
        if not is_real(matrix.dtype):
            raise ValueError(f"{name} must be real numbers, got dtype {matrix.dtype}")
        # a copy: eliminate_zeros and sort_indices work in place
        csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        if shape is not None and csr.shape != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {csr.shape}")
        if not np.isfinite(csr.data).all():
            raise ValueError(f"{name} must be finite (found NaN or inf)")
    else:
        csr = sp.csr_matrix(check_weights(matrix, name, shape))
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data, csr.shape


def simulate_network(times, ids, w_in, w_rec, lif: LIF, t_end, delay=0.0, single_spike=False,
                     method="auto", max_spikes_per_neuron=DEFAULT_MAX_SPIKES) -> Spikes:
    """Exact event-driven simulation of N recurrently connected LIF neurons.

    Parameters
    ----------
    times, ids : external input spikes (as in ``simulate_layer``), ids in [0, n_in).
    w_in : (n_in, N) dense array or scipy.sparse matrix, input -> neuron weights.
    w_rec : (N, N) dense or scipy.sparse, w_rec[i, j] is the jump of neuron j's
        current at a spike of neuron i (self-connections allowed).
    lif, t_end, single_spike, method, max_spikes_per_neuron : as in ``simulate_layer``.
    delay : float >= 0
        Transmission delay of recurrent spikes. With delay 0 a spike reaches its
        targets at the same instant, after the spiking neuron's own reset and
        after every other crossing at that instant: simultaneous events are
        applied together, whatever their order or ids (see ``network_kernel``).

    Returns
    -------
    Spikes over the N neurons, sorted by time then id. With w_rec == 0 these are
    the spikes of ``simulate_layer(times, ids, w_in, ...)`` up to rounding: the
    two engines bracket crossings differently, so times may differ in the last
    bits and a crossing that clears threshold by about an ulp may be found by
    only one of them.
    """
    lif = check_lif(lif)
    t_end = check_t_end(t_end)
    single_spike = check_bool(single_spike, "single_spike")
    method_code = check_method(method, lif)
    max_spikes = check_max_spikes(max_spikes_per_neuron)
    delay = check_nonnegative(delay, "delay")
    win_ptr, win_idx, win_val, (n_in, n_neurons) = _as_csr(w_in, "w_in", None)
    wrec_ptr, wrec_idx, wrec_val, _ = _as_csr(w_rec, "w_rec", (n_neurons, n_neurons))
    times = check_spike_times(times)
    ids = check_ids(ids, n_in, times.shape[0])
    times, ids, _ = prepare_inputs(times, ids, np.zeros((n_in, 0)), t_end)
    out_t, out_j, status = network_kernel(
        times, ids, win_ptr, win_idx, win_val, wrec_ptr, wrec_idx, wrec_val, n_neurons,
        lif.rate_i, lif.rate_v, lif.threshold, t_end, delay, single_spike, method_code,
        max_spikes)
    if status:
        raise SpikeLimitError(
            f"neuron {status - 1} fired more than max_spikes_per_neuron={max_spikes} times "
            "before t_end; check the weights' scale or raise max_spikes_per_neuron")
    return Spikes(out_t, out_j, n_neurons)
