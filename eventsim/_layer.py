"""CPU drivers (numba, parallel) of a feed-forward layer over a batch of samples.

Input spike lists of a batch are stored CSR-style: ``times``/``ids`` of sample
``b`` are ``[ptr[b]:ptr[b+1]]``, sorted by (time, id), all in [0, t_end).
Output spikes of a layer are stored per (sample, neuron) in ``(B, J, cap)``
buffers. Nothing here validates input: the host API does.
"""

import math

import numpy as np
from numba import njit, prange

from ._math import jit, kappa, kappa_max, readout_slope
from ._neuron import adjoint_back, adjoint_spike, exact_interval

pjit = njit(cache=True, parallel=True, error_model="numpy")

#: samples are split into this many chunks for gradient accumulation; fixed,
#: so that results do not depend on the number of threads
N_CHUNKS = 8


def prepare_weights(w):
    """Weights in the layout the CPU kernels read: C order, rows w[i, :] contiguous."""
    return np.ascontiguousarray(w, dtype=np.float64)


@jit
def interval_factors_one(k, times, stop, t_end, a, b, ea, eb, kap, kmax):
    """Decay factors of interval k, [times[k], times[k+1] or t_end).

    Between simultaneous inputs the interval is empty: e^0 = 1 and
    kappa(0) = 0 exactly, so no exponential is evaluated there.
    """
    t1 = times[k + 1] if k + 1 < stop else t_end
    length = t1 - times[k]
    if length == 0.0:
        ea[k] = 1.0
        eb[k] = 1.0
        kap[k] = 0.0
        kmax[k] = 0.0
        return
    ea[k] = math.exp(-a * length)
    eb[k] = math.exp(-b * length)
    kap[k] = kappa(length, a, b)
    kmax[k] = kappa_max(length, kap[k], a, b)


@pjit
def interval_factors(times, ptr, t_end, a, b):
    total = times.shape[0]
    ea = np.empty(total)
    eb = np.empty(total)
    kap = np.empty(total)
    kmax = np.empty(total)
    for s in prange(ptr.shape[0] - 1):
        for k in range(ptr[s], ptr[s + 1]):
            interval_factors_one(k, times, ptr[s + 1], t_end, a, b, ea, eb, kap, kmax)
    return ea, eb, kap, kmax


@pjit
def layer_forward(times, ids, ptr, w, t_end, a, b, theta, single_spike, method,
                  max_spikes, cap):
    """Forward scan of a layer over a batch; w is (n_in, n_out), C order.

    One thread per sample; the neurons of a sample advance together, input by
    input, in a loop the compiler vectorises: I += w[i_k, :], then the linear
    closed-form step over the interval (skipped between simultaneous inputs,
    as in ``neuron_forward``). Neurons for which the sound filter
    ``needs_exact`` (here in branch-free form) fires are redone exactly from their saved state by
    ``exact_interval`` (the same code as the CUDA path), so no spike can be
    missed and the result is bit-identical to ``neuron_forward``.

    Returns out_t, out_dv (B, J, cap), counts (B, J), v_end (B, J).
    """
    n_samples = ptr.shape[0] - 1
    n_out = w.shape[1]
    ea, eb, kap, kmax = interval_factors(times, ptr, t_end, a, b)
    out_t = np.full((n_samples, n_out, cap), np.inf)
    out_dv = np.zeros((n_samples, n_out, cap))
    counts = np.zeros((n_samples, n_out), np.int64)
    v_end = np.zeros((n_samples, n_out))
    theta_lo = theta * (1.0 - 1e-12)
    rise_floor = 1e-280 * b * theta  # see _neuron.rising_at_end
    for s in prange(n_samples):
        v = np.zeros(n_out)
        cur = np.zeros(n_out)
        v_old = np.empty(n_out)
        cur_old = np.empty(n_out)
        can_fire = np.ones(n_out, np.bool_)
        is_hot = np.zeros(n_out, np.bool_)
        cnt = counts[s]
        stop = ptr[s + 1]
        for k in range(ptr[s], stop):
            row = w[ids[k]]
            t1 = times[k + 1] if k + 1 < stop else t_end
            if t1 == times[k]:  # simultaneous inputs: the currents add, V does not move
                for j in range(n_out):
                    cur[j] += row[j]
                continue
            e_a = ea[k]
            e_b = eb[k]
            kp = kap[k]
            km = kmax[k]
            n_hot = 0
            for j in range(n_out):  # vectorised: branch-free form of needs_exact
                c0 = cur[j] + row[j]
                v0 = v[j]
                v1 = v0 * e_b + c0 * kp
                c1 = c0 * e_a
                v_old[j] = v0
                cur_old[j] = c0
                v[j] = v1
                cur[j] = c1
                hot = can_fire[j] & ((v1 >= theta_lo) | (
                    (c0 - b * v0 > 0.0)
                    & (c1 - b * v1 < 1e-12 * (abs(c1) + b * abs(v1)) + rise_floor)
                    & (max(v0, 0.0) + max(c0, 0.0) * km >= theta)))
                is_hot[j] = hot
                n_hot += hot
            if n_hot == 0:
                continue
            for j in range(n_out):
                if is_hot[j]:
                    v[j], cur[j], cnt[j], can_fire[j] = exact_interval(
                        v_old[j], cur_old[j], v[j], cur[j], times[k], t1, t_end, e_a, e_b, kp,
                        km, a, b, theta, method, single_spike, max_spikes, cnt[j],
                        out_t[s, j], out_dv[s, j])
        v_end[s] = v
    return out_t, out_dv, counts, v_end


#: per-chunk gradient buffers of layer_backward by weight shape, kept between
#: calls: a fresh (N_CHUNKS, n_in, n_out) array per batch (20 MB for 784 x 400)
#: costs more in page faults than its zeroing. Calls hold the GIL, so sharing is
#: safe; at most MAX_SCRATCH shapes (one per layer of a network) are kept.
_grad_w_chunks = {}
MAX_SCRATCH = 4


def layer_backward(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, counts,
                   merged, spk_g, nu, min_slope, want_input_grad):
    """Reverse adjoint scans of a layer (see ``neuron_backward`` for the maths).

    Returns dL/dw (n_in, n_out) and dL/d(input time) (n_inputs,). spk_g
    (B, J, cap) holds dL/ds for every output spike, nu (B, J) dL/dV(t_end);
    ``merged`` is the layer's spike list from ``merge_spikes``.
    """
    work = _grad_w_chunks.get(w.shape)
    if work is None:
        if len(_grad_w_chunks) >= MAX_SCRATCH:
            _grad_w_chunks.clear()
        work = _grad_w_chunks[w.shape] = np.empty((N_CHUNKS,) + w.shape)
    return layer_backward_kernel(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv,
                                 merged, spk_g, nu, min_slope, want_input_grad, work)


@pjit
def layer_backward_kernel(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, merged,
                          spk_g, nu, min_slope, want_input_grad, grad_w_chunks):
    """Kernel of ``layer_backward``; grad_w_chunks (>= N_CHUNKS, n_in, n_out) is scratch.

    Samples are split into N_CHUNKS fixed chunks, each with its own gradient
    buffer; within a sample the neurons step back together (vectorised), and
    the few neurons with a spike inside an interval are redone from their saved
    adjoint state with the shared scalar functions.
    """
    n_samples = ptr.shape[0] - 1
    n_in, n_out = w.shape
    m_times, m_ids, m_ptr, m_src = merged
    ea, eb, kap, _ = interval_factors(times, ptr, t_end, a, b)
    n_chunks = min(N_CHUNKS, max(n_samples, 1))
    grad_in = np.zeros(times.shape[0])
    for c in prange(n_chunks):
        gw = grad_w_chunks[c]
        gw[:] = 0.0
        lv = np.empty(n_out)
        li = np.empty(n_out)
        lv_old = np.empty(n_out)
        li_old = np.empty(n_out)
        t_at = np.empty(n_out)
        seen = np.full(n_out, -1, np.int64)
        for s in range(c * n_samples // n_chunks, (c + 1) * n_samples // n_chunks):
            start = ptr[s]
            stop = ptr[s + 1]
            # this sample's spikes in time order (the merged list of the forward)
            spk_time = m_times[m_ptr[s]:m_ptr[s + 1]]
            spk_j = m_ids[m_ptr[s]:m_ptr[s + 1]]
            spk_n = m_src[m_ptr[s]:m_ptr[s + 1]]
            q = spk_time.shape[0] - 1
            for j in range(n_out):
                lv[j] = nu[s, j]
                li[j] = 0.0
            for k in range(stop - 1, start - 1, -1):
                t0 = times[k]
                t1 = times[k + 1] if k + 1 < stop else t_end
                e_a = ea[k]
                e_b = eb[k]
                kp = kap[k]
                has_spikes = q >= 0 and spk_time[q] > t0
                if has_spikes:
                    lv_old[:] = lv
                    li_old[:] = li
                for j in range(n_out):
                    li[j] = li[j] * e_a + kp * lv[j]
                    lv[j] = lv[j] * e_b
                if has_spikes:
                    first = q
                    while q >= 0 and spk_time[q] > t0:
                        t_at[spk_j[q]] = t1
                        seen[spk_j[q]] = -1
                        q -= 1
                    for r in range(first, q, -1):
                        j = spk_j[r]
                        if seen[j] != k:  # latest spike of j in this interval
                            seen[j] = k
                            l_i, l_v = li_old[j], lv_old[j]
                        else:
                            l_i, l_v = li[j], lv[j]
                        l_i, l_v = adjoint_back(l_i, l_v, t_at[j] - spk_time[r], a, b)
                        n = spk_n[r]
                        l_v = adjoint_spike(l_v, spk_g[s, j, n], out_dv[s, j, n], min_slope,
                                            b, theta)
                        li[j], lv[j] = l_i, l_v
                        t_at[j] = spk_time[r]
                    for r in range(first, q, -1):
                        j = spk_j[r]
                        if t_at[j] != t0:
                            li[j], lv[j] = adjoint_back(li[j], lv[j], t_at[j] - t0, a, b)
                            t_at[j] = t0
                grow = gw[ids[k]]
                for j in range(n_out):
                    grow[j] += li[j]
                if want_input_grad:
                    wrow = w[ids[k]]
                    acc = 0.0
                    for j in range(n_out):
                        acc += wrow[j] * (a * li[j] - lv[j])
                    grad_in[k] = acc
    grad_w = np.empty((n_in, n_out))
    for i in prange(n_in):  # chunk order fixed per entry: deterministic
        for j in range(n_out):
            total = grad_w_chunks[0, i, j]
            for c in range(1, n_chunks):
                total += grad_w_chunks[c, i, j]
            grad_w[i, j] = total
    return grad_w, grad_in


@jit
def write_sorted(tmp_t, tmp_ids, start, times, ids):
    """Write one sample's spikes into times/ids[start:], stably sorted by time.

    Stable, so equal times keep the order of ``tmp_ids`` (ascending ids).
    Returns the sorting permutation.
    """
    order = np.argsort(tmp_t, kind="mergesort")
    for q in range(tmp_t.shape[0]):
        times[start + q] = tmp_t[order[q]]
        ids[start + q] = tmp_ids[order[q]]
    return order


@pjit
def merge_spikes(out_t, counts):
    """Per-sample lists of a layer's spikes sorted by (time, neuron).

    Returns times, ids, ptr (CSR) and src_n, the index of each spike within
    its neuron's own train (to scatter gradients back).
    """
    n_samples, n_out, _ = out_t.shape
    ptr = np.zeros(n_samples + 1, np.int64)
    for s in range(n_samples):
        total = 0
        for j in range(n_out):
            total += counts[s, j]
        ptr[s + 1] = ptr[s] + total
    total = ptr[n_samples]
    times = np.empty(total)
    ids = np.empty(total, np.int64)
    src_n = np.empty(total, np.int64)
    for s in prange(n_samples):
        n_s = ptr[s + 1] - ptr[s]
        tmp_t = np.empty(n_s)
        tmp_j = np.empty(n_s, np.int64)
        tmp_n = np.empty(n_s, np.int64)
        q = 0
        for j in range(n_out):
            for n in range(counts[s, j]):
                tmp_t[q] = out_t[s, j, n]
                tmp_j[q] = j
                tmp_n[q] = n
                q += 1
        order = write_sorted(tmp_t, tmp_j, ptr[s], times, ids)
        for q in range(n_s):
            src_n[ptr[s] + q] = tmp_n[order[q]]
    return times, ids, ptr, src_n


@pjit
def scatter_spike_grads(grad_in, ids, ptr, src_n, n_out, cap):
    """Inverse of merge_spikes for gradients: (n_spikes,) -> (B, J, cap)."""
    n_samples = ptr.shape[0] - 1
    spk_g = np.zeros((n_samples, n_out, cap))
    for s in prange(n_samples):
        for k in range(ptr[s], ptr[s + 1]):
            spk_g[s, ids[k], src_n[k]] = grad_in[k]
    return spk_g


@pjit
def dense_to_lists(x, t_end):
    """Latency inputs x (B, n_in) -> per-sample lists of spikes with time < t_end.

    Entries >= t_end (and +inf, "no spike") are dropped; ties are ordered by id.
    """
    n_samples, n_in = x.shape
    ptr = np.zeros(n_samples + 1, np.int64)
    for s in range(n_samples):
        c = 0
        for i in range(n_in):
            if x[s, i] < t_end:
                c += 1
        ptr[s + 1] = ptr[s] + c
    times = np.empty(ptr[n_samples])
    ids = np.empty(ptr[n_samples], np.int64)
    for s in prange(n_samples):
        n_s = ptr[s + 1] - ptr[s]
        tmp_t = np.empty(n_s)
        tmp_i = np.empty(n_s, np.int64)
        q = 0
        for i in range(n_in):
            if x[s, i] < t_end:
                tmp_t[q] = x[s, i]
                tmp_i[q] = i
                q += 1
        write_sorted(tmp_t, tmp_i, ptr[s], times, ids)
    return times, ids, ptr


@pjit
def readout_features(times, ids, ptr, n_in, t_out, a, b):
    """Output-layer features phi[b, i] = sum over spikes of i of kappa(t_out - t) (eq. 20).

    A non-firing output layer is linear in them: v_out = phi @ W_out.
    """
    n_samples = ptr.shape[0] - 1
    phi = np.zeros((n_samples, n_in))
    for s in prange(n_samples):
        for k in range(ptr[s], ptr[s + 1]):
            phi[s, ids[k]] += kappa(t_out - times[k], a, b)
    return phi


@pjit
def readout_time_grads(times, ids, ptr, h, t_out, a, b):
    """dL/dt for every input spike of a non-firing readout, given h = dL/dphi (B, n_in).

    d kappa(t_out - t)/dt = a kappa(D) - e^{-b D}, D = t_out - t (``readout_slope``).
    """
    n_samples = ptr.shape[0] - 1
    grad = np.empty(times.shape[0])
    for s in prange(n_samples):
        for k in range(ptr[s], ptr[s + 1]):
            d = t_out - times[k]
            grad[k] = h[s, ids[k]] * readout_slope(d, a, b)
    return grad
