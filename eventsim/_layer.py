"""CPU drivers (numba, parallel) of a feed-forward layer over a batch of samples.

Input spike lists of a batch are stored CSR-style: ``times``/``ids`` of sample
``b`` are ``[ptr[b]:ptr[b+1]]``, sorted by (time, id), all in [0, t_end).
Output spikes of a layer are stored per (sample, neuron) in ``(B, J, cap)``
buffers. Nothing here validates input: the host API does.
"""

import math

import numpy as np
from numba import njit, prange

from ._math import crossing_on_rise, decay, decay_ak, jit, kappa, kappa_max, readout_slope
from ._neuron import adjoint_spike, exact_interval, rises_through, spike_slope

pjit = njit(cache=True, parallel=True, error_model="numpy")

FINISH = 1   # layer_forward_kernel's modes of a flagged neuron
GENERIC = 2

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
    e_a, e_b, kp = decay(length, a, b)
    ea[k] = e_a
    eb[k] = e_b
    kap[k] = kp
    kmax[k] = kappa_max(length, kp, a, b)


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


def layer_forward(times, ids, ptr, w, t_end, a, b, theta, single_spike, method,
                  max_spikes, cap):
    """Forward scan of a layer over a batch; w is (n_in, n_out), C order.

    Returns out_t, out_dv (B, J, cap) (padded with inf and 0), counts (B, J),
    v_end (B, J); see ``layer_forward_kernel``.
    """
    factors = interval_factors(times, ptr, t_end, a, b)
    return layer_forward_kernel(times, ids, ptr, w, t_end, a, b, theta, single_spike, method,
                                max_spikes, cap, factors)


@pjit
def layer_forward_kernel(times, ids, ptr, w, t_end, a, b, theta, single_spike, method,
                         max_spikes, cap, factors):
    """Kernel of ``layer_forward``; factors = interval_factors(times, ptr, t_end, a, b).

    One thread per sample; the neurons of a sample advance together in a
    vectorised loop (I += w[i_k, :], the closed-form step, the branch-free
    ``needs_exact`` filter). The neurons the filter flags are then handled as a
    batch, in passes over the list of them, so that the exponentials of
    independent neurons overlap: the direct crossing of ``exact_interval``'s
    first iteration, the spike (I e^{-as}, dV/dt), the step from V = 0 to the
    interval end. Every other case (no direct crossing; a second spike possible
    in the interval) runs ``exact_interval`` from the interval's start state.
    The operations are those of ``exact_interval``, so the result is
    bit-identical to ``neuron_forward``.
    """
    n_samples = ptr.shape[0] - 1
    n_out = w.shape[1]
    ea, eb, kap, kmax = factors
    out_t = np.empty((n_samples, n_out, cap))
    out_dv = np.empty((n_samples, n_out, cap))
    counts = np.empty((n_samples, n_out), np.int64)
    v_end = np.empty((n_samples, n_out))
    theta_lo = theta * (1.0 - 1e-12)
    rise_floor = 1e-280 * b * theta  # see _neuron.rising_at_end
    for s in prange(n_samples):
        v = np.zeros(n_out)
        cur = np.zeros(n_out)
        v_old = np.empty(n_out)
        cur_old = np.empty(n_out)
        can_fire = np.ones(n_out, np.bool_)
        is_hot = np.zeros(n_out, np.bool_)
        hot_j = np.empty(n_out, np.int64)
        mode = np.empty(n_out, np.int64)
        h_s = np.empty(n_out)
        h_cur = np.empty(n_out)
        cnt = counts[s]
        cnt[:] = 0
        stop = ptr[s + 1]
        for k in range(ptr[s], stop):
            row = w[ids[k]]
            t0 = times[k]
            t1 = times[k + 1] if k + 1 < stop else t_end
            if t1 == t0:
                for j in range(n_out):
                    cur[j] += row[j]
                continue
            e_a = ea[k]
            e_b = eb[k]
            kp = kap[k]
            km = kmax[k]
            n_hot = 0
            for j in range(n_out):
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
            nh = 0
            for j in range(n_out):
                if is_hot[j]:
                    hot_j[nh] = j
                    nh += 1
            length = t1 - t0
            # pass 1: the direct crossing of exact_interval's first iteration
            for h in range(nh):
                j = hot_j[h]
                v0 = v_old[j]
                v1 = v[j]
                if rises_through(v0, v1, cur[j], b, theta):
                    h_s[h] = crossing_on_rise(v0, cur_old[j], length, v1, a, b, theta, method)
                    mode[h] = FINISH
                else:
                    mode[h] = GENERIC
            # pass 2: the spike, unless it is at/after t_end (then the state at t1 is
            # (v1, c1), already in v, cur) or a second one may follow (generic)
            for h in range(nh):
                if mode[h] != FINISH:
                    continue
                j = hot_j[h]
                sv = h_s[h]
                ts = t0 + sv
                if ts >= t_end:
                    mode[h] = 0
                    continue
                c_s = cur_old[j] * math.exp(-a * sv)
                n = cnt[j]
                if single_spike or n + 1 > max_spikes:
                    can_fire[j] = False
                elif not (c_s * km < theta_lo):   # exact_interval looks for another
                    mode[h] = GENERIC
                    continue
                if n < cap:
                    out_t[s, j, n] = ts
                    out_dv[s, j, n] = spike_slope(c_s, a, b, theta)
                cnt[j] = n + 1
                h_s[h] = ts
                h_cur[h] = c_s
            # pass 3: from V = 0 at the spike to t1 (as exact_interval's last branch)
            for h in range(nh):
                if mode[h] == FINISH:
                    j = hot_j[h]
                    g_a, g_k = decay_ak(t1 - h_s[h], a, b)
                    c_s = h_cur[h]
                    v[j] = 0.0 + c_s * g_k
                    cur[j] = c_s * g_a
            for h in range(nh):
                if mode[h] == GENERIC:
                    j = hot_j[h]
                    v[j], cur[j], cnt[j], can_fire[j] = exact_interval(
                        v_old[j], cur_old[j], v[j], cur[j], t0, t1, t_end, e_a, e_b, kp,
                        km, a, b, theta, method, single_spike, max_spikes, cnt[j],
                        out_t[s, j], out_dv[s, j])
        v_end[s] = v
        for j in range(n_out):
            for n in range(min(cnt[j], cap), cap):
                out_t[s, j, n] = np.inf
                out_dv[s, j, n] = 0.0
    return out_t, out_dv, counts, v_end


#: per-chunk gradient buffers of layer_backward by weight shape, kept between
#: calls: a fresh (N_CHUNKS, n_in, n_out) array per batch (20 MB for 784 x 400)
#: costs more in page faults than its zeroing. Calls hold the GIL, so sharing is
#: safe; at most MAX_SCRATCH shapes (one per layer of a network) are kept.
_grad_w_chunks = {}
MAX_SCRATCH = 4


def _scratch(shape):
    work = _grad_w_chunks.get(shape)
    if work is None:
        if len(_grad_w_chunks) >= MAX_SCRATCH:
            _grad_w_chunks.clear()
        work = _grad_w_chunks[shape] = (np.empty((N_CHUNKS,) + shape),
                                        np.empty((N_CHUNKS, shape[0]), np.bool_))
    return work


def layer_backward_merged(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, counts,
                          merged, g_spk, nu, min_slope, want_input_grad):
    """Reverse adjoint scans of a layer (see ``neuron_backward`` for the maths).

    g_spk[r] is dL/ds for spike r of ``merged`` (the layer's spike list from
    ``merge_spikes``, i.e. the next layer's input-time gradient), nu (B, J)
    dL/dV(t_end). Returns dL/dw (n_in, n_out) and dL/d(input time) (n_inputs,).
    ``out_t`` and ``counts`` are not needed here (the CUDA twin takes the same
    arguments).
    """
    work, touched = _scratch(w.shape)
    factors = interval_factors(times, ptr, t_end, a, b)
    return layer_backward_kernel(times, ids, ptr, w, t_end, a, b, theta, out_dv, merged,
                                 g_spk, nu, min_slope, want_input_grad, work, touched, factors)


@pjit
def gather_spike_grads(spk_g, ids, ptr, src_n):
    """Inverse of scatter_spike_grads: (B, J, cap) -> (n_spikes,) in merged order."""
    g = np.empty(ids.shape[0])
    for s in prange(ptr.shape[0] - 1):
        for k in range(ptr[s], ptr[s + 1]):
            g[k] = spk_g[s, ids[k], src_n[k]]
    return g


def layer_backward(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, counts,
                   merged, spk_g, nu, min_slope, want_input_grad):
    """``layer_backward_merged`` with dL/ds given per (sample, neuron, spike) as spk_g
    (B, J, cap), the interface the CUDA backend shares."""
    g = gather_spike_grads(spk_g, merged[1], merged[2], merged[3])
    return layer_backward_merged(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, counts,
                                 merged, g, nu, min_slope, want_input_grad)


@pjit
def layer_backward_kernel(times, ids, ptr, w, t_end, a, b, theta, out_dv, merged,
                          g_spk, nu, min_slope, want_input_grad, grad_w_chunks, touched,
                          factors):
    """Kernel of ``layer_backward_merged``; grad_w_chunks (>= N_CHUNKS, n_in, n_out)
    and touched (>= N_CHUNKS, n_in) are scratch; g_spk[r] = dL/ds of merged spike r.

    Samples are split into N_CHUNKS fixed chunks, each with its own gradient
    buffer (a row is zeroed when the chunk first touches it, and only touched
    rows are summed, in chunk order); within a sample the neurons step back
    together (vectorised, skipping zero-length intervals, where lambda does not
    change), and the spikes of an interval are handled in passes: their gaps,
    all their decay factors (independent, so they overlap), then the adjoint
    updates in order.
    """
    n_samples = ptr.shape[0] - 1
    n_in, n_out = w.shape
    m_times, m_ids, m_ptr, m_src = merged
    ea, eb, kap, _ = factors
    n_chunks = min(N_CHUNKS, max(n_samples, 1))
    most = 1
    for s in range(n_samples):
        most = max(most, m_ptr[s + 1] - m_ptr[s])
    grad_in = np.zeros(times.shape[0])
    for c in prange(n_chunks):
        gw = grad_w_chunks[c]
        mark = touched[c]
        mark[:] = False
        lv = np.empty(n_out)
        li = np.empty(n_out)
        lv_old = np.empty(n_out)
        li_old = np.empty(n_out)
        t_at = np.empty(n_out)
        seen = np.full(n_out, -1, np.int64)
        f_a = np.empty(most)
        f_b = np.empty(most)
        f_k = np.empty(most)
        gap = np.empty(most)
        back_j = np.empty(n_out, np.int64)
        for s in range(c * n_samples // n_chunks, (c + 1) * n_samples // n_chunks):
            start = ptr[s]
            stop = ptr[s + 1]
            base = m_ptr[s]
            spk_time = m_times[base:m_ptr[s + 1]]
            spk_j = m_ids[base:m_ptr[s + 1]]
            spk_n = m_src[base:m_ptr[s + 1]]
            q = spk_time.shape[0] - 1
            for j in range(n_out):
                lv[j] = nu[s, j]
                li[j] = 0.0
            for k in range(stop - 1, start - 1, -1):
                t0 = times[k]
                t1 = times[k + 1] if k + 1 < stop else t_end
                if t1 != t0:
                    e_a = ea[k]
                    e_b = eb[k]
                    kp = kap[k]
                    first = q
                    while q >= 0 and spk_time[q] > t0:
                        j = spk_j[q]
                        li_old[j] = li[j]
                        lv_old[j] = lv[j]
                        t_at[j] = t1
                        seen[j] = -1
                        q -= 1
                    for j in range(n_out):
                        li[j] = li[j] * e_a + kp * lv[j]
                        lv[j] = lv[j] * e_b
                    if first != q:
                        m = 0
                        for r in range(first, q, -1):   # gaps back to each spike
                            j = spk_j[r]
                            gap[m] = t_at[j] - spk_time[r]
                            t_at[j] = spk_time[r]
                            m += 1
                        for x in range(m):
                            f_a[x], f_b[x], f_k[x] = decay(gap[x], a, b)
                        m = 0
                        for r in range(first, q, -1):
                            j = spk_j[r]
                            if seen[j] != k:  # latest spike of j in this interval
                                seen[j] = k
                                l_i, l_v = li_old[j], lv_old[j]
                            else:
                                l_i, l_v = li[j], lv[j]
                            l_i, l_v = l_i * f_a[m] + f_k[m] * l_v, l_v * f_b[m]
                            l_v = adjoint_spike(l_v, g_spk[base + r], out_dv[s, j, spk_n[r]],
                                                min_slope, b, theta)
                            li[j], lv[j] = l_i, l_v
                            m += 1
                        m = 0
                        for r in range(first, q, -1):   # earliest spike back to t0
                            j = spk_j[r]
                            if t_at[j] != t0:
                                gap[m] = t_at[j] - t0
                                back_j[m] = j
                                t_at[j] = t0
                                m += 1
                        for x in range(m):
                            f_a[x], f_b[x], f_k[x] = decay(gap[x], a, b)
                        for x in range(m):
                            j = back_j[x]
                            li[j], lv[j] = li[j] * f_a[x] + f_k[x] * lv[j], lv[j] * f_b[x]
                i = ids[k]
                grow = gw[i]
                if mark[i]:
                    for j in range(n_out):
                        grow[j] += li[j]
                else:
                    mark[i] = True
                    for j in range(n_out):
                        grow[j] = 0.0 + li[j]
                if want_input_grad:
                    wrow = w[i]
                    acc = 0.0
                    for j in range(n_out):
                        acc += wrow[j] * (a * li[j] - lv[j])
                    grad_in[k] = acc
    grad_w = np.empty((n_in, n_out))
    for i in prange(n_in):
        c0 = 0
        while c0 < n_chunks and not touched[c0, i]:
            c0 += 1
        if c0 == n_chunks:
            for j in range(n_out):
                grad_w[i, j] = 0.0
            continue
        for j in range(n_out):
            grad_w[i, j] = grad_w_chunks[c0, i, j]
        for c in range(c0 + 1, n_chunks):
            if touched[c, i]:
                for j in range(n_out):
                    grad_w[i, j] += grad_w_chunks[c, i, j]
    return grad_w, grad_in


@jit
def stable_argsort(t):
    """np.argsort(t, kind="mergesort") for finite t >= 0, in O(n) for spread-out times.

    A counting sort on the bucket floor(t n / max t) (monotone in t, so the
    stable order is kept), then each bucket sorted on its own: by insertion
    when small, by mergesort when large (clustered times), so the worst case
    stays O(n log n). Subnormal maxima (n / max t overflows) use one bucket;
    a NaN (from an overflowed state) sends the whole list to NumPy's mergesort,
    which puts it last.
    """
    n = t.shape[0]
    order = np.empty(n, np.int64)
    if n == 0:
        return order
    t_max = 0.0
    for q in range(n):
        if t[q] != t[q]:
            return np.argsort(t, kind="mergesort")
        t_max = t[q] if t[q] > t_max else t_max
    scale = n / t_max if t_max > 0.0 else 0.0
    if scale > 1e300:
        scale = 0.0
    bucket = np.empty(n, np.int64)
    start = np.zeros(n + 1, np.int64)
    for q in range(n):
        x = int(t[q] * scale)
        x = 0 if x < 0 else (n - 1 if x >= n else x)
        bucket[q] = x
        start[x + 1] += 1
    for x in range(n):
        start[x + 1] += start[x]
    for q in range(n):
        x = bucket[q]
        order[start[x]] = q
        start[x] += 1
    lo = 0
    for x in range(n):
        hi = start[x]
        if hi - lo > 32:
            part = order[lo:hi].copy()
            inner = np.argsort(t[part], kind="mergesort")
            for r in range(hi - lo):
                order[lo + r] = part[inner[r]]
        else:
            for r0 in range(lo + 1, hi):
                o = order[r0]
                tv = t[o]
                r = r0
                while r > lo and t[order[r - 1]] > tv:
                    order[r] = order[r - 1]
                    r -= 1
                order[r] = o
        lo = hi
    return order


@jit
def write_sorted(tmp_t, tmp_ids, start, times, ids):
    """Write one sample's spikes into times/ids[start:], stably sorted by time.

    Stable, so equal times keep the order of ``tmp_ids`` (ascending ids).
    Returns the sorting permutation.
    """
    order = stable_argsort(tmp_t)
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


def matmul(x, y):
    """x @ y for the readout: v_out = phi @ W_out and its gradients
    phi^T dL/dv_out and dL/dv_out W_out^T.

    Each entry is summed over the inner index in increasing order, one multiply
    and one add at a time, so results are the same bits on every CPU (a BLAS
    picks CPU-specific kernels that sum in other orders). Computed as
    (y^T x^T)^T when the result has more rows than columns, which gives the
    same bits with the longer loop innermost.
    """
    if x.shape[0] > y.shape[1]:
        return np.ascontiguousarray(matmul_kernel(np.ascontiguousarray(y.T),
                                                  np.ascontiguousarray(x.T)).T)
    return matmul_kernel(np.ascontiguousarray(x), np.ascontiguousarray(y))


@jit
def matmul_kernel(x, y):
    """x @ y as rank-1 updates, inner index outermost: entry (r, c) is
    ((0 + x[r, 0] y[0, c]) + x[r, 1] y[1, c]) + ..., while the additions of
    different entries overlap. Threads do not pay at the readout's sizes."""
    rows, inner = x.shape
    cols = y.shape[1]
    out = np.zeros((rows, cols))
    for k in range(inner):
        for r in range(rows):
            x_val = x[r, k]
            for c in range(cols):
                out[r, c] += x_val * y[k, c]
    return out


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
