"""CPU drivers (numba, parallel) of a feed-forward layer over a batch of samples.

Input spike lists of a batch are stored CSR-style: ``times``/``ids`` of sample
``b`` are ``[ptr[b]:ptr[b+1]]``, sorted by (time, id), all in [0, t_end).
Output spikes of a layer are stored per (sample, neuron) in ``(B, J, cap)``
buffers. Nothing here validates input: the host API does.
"""

import math

import numpy as np
from numba import njit, prange

from ._math import jit, kappa, kappa_max
from ._neuron import neuron_backward, neuron_forward

pjit = njit(cache=True, parallel=True, error_model="numpy")

#: samples are split into this many chunks for gradient accumulation; fixed,
#: so that results do not depend on the number of threads
N_CHUNKS = 8


def prepare_weights(w):
    """Weights in the layout the CPU kernels read fastest: w[:, j] contiguous."""
    return np.asfortranarray(w, dtype=np.float64)


@jit
def interval_factors_one(k, times, stop, t_end, a, b, ea, eb, kap, kmax):
    """Decay factors of interval k, [times[k], times[k+1] or t_end)."""
    t1 = times[k + 1] if k + 1 < stop else t_end
    length = t1 - times[k]
    ea[k] = math.exp(-a * length)
    eb[k] = math.exp(-b * length)
    kap[k] = kappa(length, a, b)
    kmax[k] = kappa_max(length, a, b)


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
    """Forward scan of every (sample, neuron) pair; w is (n_in, n_out).

    Returns out_t, out_dv (B, J, cap), counts (B, J), v_end (B, J).
    """
    n_samples = ptr.shape[0] - 1
    n_out = w.shape[1]
    ea, eb, kap, kmax = interval_factors(times, ptr, t_end, a, b)
    out_t = np.full((n_samples, n_out, cap), np.inf)
    out_dv = np.zeros((n_samples, n_out, cap))
    counts = np.zeros((n_samples, n_out), np.int64)
    v_end = np.zeros((n_samples, n_out))
    # neuron-major order: one weight column stays in cache across samples
    for flat in prange(n_samples * n_out):
        j = flat // n_samples
        s = flat - j * n_samples
        n, v = neuron_forward(j, times, ids, ea, eb, kap, kmax, ptr[s], ptr[s + 1], t_end, w,
                              a, b, theta, single_spike, method, max_spikes,
                              out_t[s, j], out_dv[s, j])
        counts[s, j] = n
        v_end[s, j] = v
    return out_t, out_dv, counts, v_end


@pjit
def layer_backward(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, counts,
                   spk_g, nu, min_slope, want_input_grad):
    """Reverse scans of a layer: dL/dw (n_in, n_out) and dL/d(input time) (n_inputs,).

    spk_g (B, J, cap): dL/ds for every output spike; nu (B, J): dL/dV(t_end).
    """
    n_samples = ptr.shape[0] - 1
    n_in, n_out = w.shape
    ea, eb, kap, _ = interval_factors(times, ptr, t_end, a, b)
    n_chunks = min(N_CHUNKS, max(n_samples, 1))
    grad_w_chunks = np.zeros((n_chunks, n_out, n_in))
    grad_in = np.zeros(times.shape[0])
    max_inputs = 0
    for s in range(n_samples):
        max_inputs = max(max_inputs, ptr[s + 1] - ptr[s])
    for c in prange(n_chunks):
        li = np.empty(max_inputs)
        lt = np.empty(max_inputs)
        gw = grad_w_chunks[c]
        for s in range(c * n_samples // n_chunks, (c + 1) * n_samples // n_chunks):
            start = ptr[s]
            stop = ptr[s + 1]
            for j in range(n_out):
                if counts[s, j] == 0 and nu[s, j] == 0.0:
                    continue
                neuron_backward(times, ea, eb, kap, start, stop, t_end, a, b, theta,
                                out_t[s, j], out_dv[s, j], spk_g[s, j], counts[s, j],
                                nu[s, j], min_slope, li, lt)
                for k in range(start, stop):
                    gw[j, ids[k]] += li[k - start]
                if want_input_grad:
                    for k in range(start, stop):
                        grad_in[k] += w[ids[k], j] * lt[k - start]
    grad_w = np.zeros((n_in, n_out))
    for c in range(n_chunks):
        grad_w += grad_w_chunks[c].T
    return grad_w, grad_in


@pjit
def merge_spikes(out_t, counts):
    """Per-sample lists of a layer's spikes sorted by (time, neuron).

    Returns times, ids, ptr (CSR) and src_n, the index of each spike within
    its neuron's own train (to scatter gradients back).
    """
    n_samples, n_out, _ = out_t.shape
    ptr = np.zeros(n_samples + 1, np.int64)
    for s in range(n_samples):
        ptr[s + 1] = ptr[s] + counts[s].sum()
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
        order = np.argsort(tmp_t, kind="mergesort")
        for q in range(n_s):
            times[ptr[s] + q] = tmp_t[order[q]]
            ids[ptr[s] + q] = tmp_j[order[q]]
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
        order = np.argsort(tmp_t, kind="mergesort")
        for q in range(n_s):
            times[ptr[s] + q] = tmp_t[order[q]]
            ids[ptr[s] + q] = tmp_i[order[q]]
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

    d kappa(t_out - t)/dt = a kappa(D) - e^{-b D}, D = t_out - t.
    """
    n_samples = ptr.shape[0] - 1
    grad = np.empty(times.shape[0])
    for s in prange(n_samples):
        for k in range(ptr[s], ptr[s + 1]):
            d = t_out - times[k]
            grad[k] = h[s, ids[k]] * (a * kappa(d, a, b) - math.exp(-b * d))
    return grad
