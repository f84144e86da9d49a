"""CUDA backend: the layer kernels of ``eventsim._layer`` on an NVIDIA GPU (numba.cuda).

This is the only module of the package that imports ``numba.cuda``; it is
imported lazily by ``Network(device="cuda")`` through :func:`backend`.

The maths exists once. The kernels below are thin drivers that call the very
same scalar ``@njit`` functions as the CPU backend: ``neuron_forward`` and
``neuron_backward`` (``eventsim._neuron``), ``interval_factors_one``
(``eventsim._layer``) and ``kappa`` (``eventsim._math``). Numba compiles a
plain ``@njit`` function called from a ``@cuda.jit`` kernel as a device
function (with the numpy error model, no exceptions). Under the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, used by the tests) kernels run as Python, so
they call the functions' ``py_func`` instead, which in turn call the same
CPU-compiled scalar functions.

Every backend function takes and returns host NumPy arrays, with the same
signature and results (up to floating-point rounding: the GPU's libdevice
``exp``/``log`` and a different summation order) as its CPU twin in
``eventsim._layer``. Inputs are copied to the GPU and results back on each
call. Layout and threads:

- ``w`` is C-order (n_in, n_out), so threads with consecutive neuron index
  ``j`` read consecutive weights (coalesced).
- forward and backward scans: one thread per (sample, neuron), neuron fastest.
- backward: the scans write lambda_I and (a lambda_I - lambda_V) of every
  (input spike, neuron) pair into (rows, n_out) scratch arrays; dL/dw[i, j] is
  then summed by one thread per (i, j) over the input spikes of i (in spike
  order, so results are deterministic), and dL/d(input time) by one thread per
  input spike. Samples are processed in groups whose scratch fits in
  ``SCRATCH_BYTES``.
- merging/sorting spike lists (``merge_spikes``, ``dense_to_lists``,
  ``scatter_spike_grads``) and ``readout_time_grads`` reuse the CPU functions on
  the host: they are O(spikes) bookkeeping, not the heavy part.

``ResidentTrainer`` is the training loop's fast path for one hidden layer (the
paper's network): the datasets, weights, gradients and Adam state stay on the
GPU between steps, the readout and its gradient are computed per hidden neuron
(no merged spike list is needed when the next layer does not fire), and dL/dW
is summed per weight through a table of each input's position in each
sample's spike list. Only what the loss of eq. 24 needs crosses to the host.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
from numba import config as _numba_config
from numba import cuda

from . import _layer
from ._layer import interval_factors_one
from ._math import kappa, readout_slope
from ._network import ForwardResult
from ._neuron import exact_interval, neuron_backward, neuron_forward
from ._optim import adam_update
from ._simulate import fit_spike_buffer

#: True when numba runs kernels in its pure-Python CUDA simulator
SIMULATOR = bool(_numba_config.ENABLE_CUDASIM)

#: bytes of GPU scratch for the backward pass (lambda arrays of one sample group)
SCRATCH_BYTES = 1 << 30

#: threads per block (the simulator runs every thread as a Python thread)
_TPB = 32 if SIMULATOR else 128

if SIMULATOR:
    # The simulator hands kernels fake arrays that compiled njit code cannot
    # take, so it runs the Python source of the drivers; the scalar maths they
    # call (first_crossing, kappa, ...) is still the compiled CPU code. Python
    # functions that take arrays must call each other's Python source too.
    def _python_source(fn, **replace):
        f = fn.py_func
        scope = dict(f.__globals__, **replace)
        return types.FunctionType(f.__code__, scope, f.__name__, f.__defaults__,
                                   f.__closure__)

    _neuron_forward = _python_source(neuron_forward,
                                     exact_interval=exact_interval.py_func)
    _neuron_backward = neuron_backward.py_func
    _interval_factors_one = interval_factors_one.py_func
    _kappa = kappa.py_func
    _readout_slope = readout_slope.py_func
    _adam_update = adam_update.py_func
else:
    _neuron_forward = neuron_forward
    _neuron_backward = neuron_backward
    _interval_factors_one = interval_factors_one
    _kappa = kappa
    _readout_slope = readout_slope
    _adam_update = adam_update


# --------------------------------------------------------------------- kernels
@cuda.jit(device=True)
def _sample_of(ptr, k):
    """Sample s with ptr[s] <= k < ptr[s + 1] (binary search; ptr is non-decreasing)."""
    lo = 0
    hi = ptr.shape[0] - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ptr[mid] <= k:
            lo = mid
        else:
            hi = mid
    return lo


@cuda.jit(device=True)
def _cell(n_rows, n_cols):
    """(row, column) of this thread in a row-major n_rows x n_cols grid; row -1 past its end."""
    flat = cuda.grid(1)
    if flat >= n_rows * n_cols:
        return -1, 0
    row = flat // n_cols
    return row, flat - row * n_cols


@cuda.jit
def _interval_factors_kernel(times, ptr, t_end, a, b, ea, eb, kap, kmax):
    k = cuda.grid(1)
    if k >= times.shape[0]:
        return
    s = _sample_of(ptr, k)
    _interval_factors_one(k, times, ptr[s + 1], t_end, a, b, ea, eb, kap, kmax)


@cuda.jit
def _forward_kernel(times, ids, ptr, ea, eb, kap, kmax, batch, t_end, w, a, b, theta,
                    single_spike, method, max_spikes, cap, out_t, out_dv, counts, v_end):
    """Row s of the outputs: neuron j on input sample batch[s]."""
    s, j = _cell(batch.shape[0], w.shape[1])
    if s < 0:
        return
    g = batch[s]
    ot = out_t[s, j, :cap]
    od = out_dv[s, j, :cap]
    n, v = _neuron_forward(j, times, ids, ea, eb, kap, kmax, ptr[g], ptr[g + 1], t_end, w,
                           a, b, theta, single_spike, method, max_spikes, ot, od)
    first_free = n if n < cap else cap
    for q in range(first_free, cap):
        ot[q] = math.inf
        od[q] = 0.0
    counts[s, j] = n
    v_end[s, j] = v


@cuda.jit
def _backward_kernel(times, ptr, ea, eb, kap, batch, s0, rows, t_end, a, b, theta, out_t,
                     out_dv, counts, spk_g, nu, min_slope, li_all, lt_all):
    """Neuron j on input sample batch[q]: output row s0 + q, scratch rows [rows[q], rows[q+1])."""
    q, j = _cell(batch.shape[0], counts.shape[1])
    if q < 0:
        return
    s = s0 + q
    start = ptr[batch[q]]
    stop = ptr[batch[q] + 1]
    li = li_all[rows[q]:rows[q + 1], j]
    lt = lt_all[rows[q]:rows[q + 1], j]
    if counts[s, j] == 0 and nu[s, j] == 0.0:
        for r in range(stop - start):
            li[r] = 0.0
            lt[r] = 0.0
        return
    _neuron_backward(times, ea, eb, kap, start, stop, t_end, a, b, theta, out_t[s, j],
                     out_dv[s, j], spk_g[s, j], counts[s, j], nu[s, j], min_slope, li, lt)


@cuda.jit
def _grad_w_kernel(order, iptr, li_all, grad_w):
    """grad_w[i, j] += sum of li_all[r, j] over the rows r of input i (rows listed by order)."""
    i, j = _cell(grad_w.shape[0], grad_w.shape[1])
    if i < 0:
        return
    acc = grad_w[i, j]
    for q in range(iptr[i], iptr[i + 1]):
        acc += li_all[order[q], j]
    grad_w[i, j] = acc


@cuda.jit
def _grad_in_kernel(ids, w, lt_all, r0, r1, grad_in):
    """grad_in[k] = sum_j w[ids[k], j] * lt[k, j] for the rows k in [r0, r1)."""
    q = cuda.grid(1)
    if q >= r1 - r0:
        return
    k = r0 + q
    i = ids[k]
    acc = 0.0
    for j in range(w.shape[1]):
        acc += w[i, j] * lt_all[q, j]
    grad_in[k] = acc


@cuda.jit
def _readout_features_kernel(times, ids, ptr, t_out, a, b, phi):
    s = cuda.grid(1)
    if s >= ptr.shape[0] - 1:
        return
    for i in range(phi.shape[1]):
        phi[s, i] = 0.0
    for k in range(ptr[s], ptr[s + 1]):
        phi[s, ids[k]] += _kappa(t_out - times[k], a, b)


@cuda.jit
def _hidden_readout_kernel(out_t, counts, t_out, a, b, phi):
    """phi[s, j] = sum over the spikes t of hidden neuron j of kappa(t_out - t) (eq. 20)."""
    s, j = _cell(counts.shape[0], counts.shape[1])
    if s < 0:
        return
    acc = 0.0
    for n in range(counts[s, j]):
        acc += _kappa(t_out - out_t[s, j, n], a, b)
    phi[s, j] = acc


@cuda.jit
def _hidden_spike_grads_kernel(out_t, counts, h, t_out, a, b, spk_g):
    """spk_g[s, j, n] = dL/dt of spike n of hidden neuron j given h = dL/dphi:
    h[s, j] d kappa(t_out - t)/dt (``readout_slope``)."""
    s, j = _cell(counts.shape[0], counts.shape[1])
    if s < 0:
        return
    n_spk = counts[s, j]
    for n in range(spk_g.shape[2]):
        if n < n_spk:
            spk_g[s, j, n] = h[s, j] * _readout_slope(t_out - out_t[s, j, n], a, b)
        else:
            spk_g[s, j, n] = 0.0


@cuda.jit
def _matmul_kernel(x, y, out, transpose_x, transpose_y):
    """out = op(x) @ op(y), op(m) = m.T where asked; one thread per element of out."""
    r, c = _cell(out.shape[0], out.shape[1])
    if r < 0:
        return
    inner = x.shape[0] if transpose_x else x.shape[1]
    acc = 0.0
    for k in range(inner):
        xv = x[k, r] if transpose_x else x[r, k]
        yv = y[c, k] if transpose_y else y[k, c]
        acc += xv * yv
    out[r, c] = acc


@cuda.jit
def _grad_w_by_position_kernel(position, batch, rows, li_all, grad_w):
    """grad_w[i, j] = sum over batch rows q in which input i spiked of
    li_all[rows[q] + position[batch[q], i], j] (position -1: no spike)."""
    i, j = _cell(grad_w.shape[0], grad_w.shape[1])
    if i < 0:
        return
    acc = 0.0
    for q in range(batch.shape[0]):
        k = position[batch[q], i]
        if k >= 0:
            acc += li_all[rows[q] + k, j]
    grad_w[i, j] = acc


@cuda.jit
def _adam_kernel(p, g, m, v, lr, beta1, beta2, eps, c1, c2, weight_decay):
    i = cuda.grid(1)
    if i < p.shape[0]:
        _adam_update(i, p, g, m, v, lr, beta1, beta2, eps, c1, c2, weight_decay)


# ------------------------------------------------------------------ host side
def _launch(kernel, n_threads, *args):
    if n_threads <= 0:
        return
    blocks = (n_threads + _TPB - 1) // _TPB
    with warnings.catch_warnings():
        # small grids (a few samples) are legitimate; do not warn about occupancy
        warnings.filterwarnings("ignore", message=".*under-utilization.*")
        kernel[blocks, _TPB](*args)


def _dev(arr, dtype):
    """Contiguous device copy of a host array (size-0 arrays get one dummy element)."""
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.size == 0:
        arr = np.zeros((1,) * arr.ndim, dtype)
    return cuda.to_device(arr)


def _interval_factors_dev(d_times, d_ptr, n_inputs, t_end, a, b):
    shape = max(int(n_inputs), 1)   # numba-cuda (unlike its simulator) needs a Python int
    ea = cuda.device_array(shape)
    eb = cuda.device_array(shape)
    kap = cuda.device_array(shape)
    kmax = cuda.device_array(shape)
    _launch(_interval_factors_kernel, n_inputs, d_times, d_ptr, float(t_end), float(a),
            float(b), ea, eb, kap, kmax)
    return ea, eb, kap, kmax


def prepare_weights(w):
    """Weights in the layout the CUDA kernels read fastest: C-order (n_in, n_out)."""
    return np.ascontiguousarray(w, dtype=np.float64)


def layer_forward(times, ids, ptr, w, t_end, a, b, theta, single_spike, method, max_spikes,
                  cap):
    """GPU twin of ``eventsim._layer.layer_forward``: (out_t, out_dv, counts, v_end)."""
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    n_samples = ptr.shape[0] - 1
    n_out = w.shape[1]
    cap = int(cap)
    n_inputs = int(np.asarray(times).shape[0])
    if n_samples == 0 or n_out == 0:
        return (np.full((n_samples, n_out, cap), np.inf), np.zeros((n_samples, n_out, cap)),
                np.zeros((n_samples, n_out), np.int64), np.zeros((n_samples, n_out)))
    d_times = _dev(times, np.float64)
    d_ids = _dev(ids, np.int64)
    d_ptr = cuda.to_device(ptr)
    d_w = _dev(w, np.float64)
    ea, eb, kap, kmax = _interval_factors_dev(d_times, d_ptr, n_inputs, t_end, a, b)
    slots = max(cap, 1)
    d_out_t = cuda.device_array((n_samples, n_out, slots))
    d_out_dv = cuda.device_array((n_samples, n_out, slots))
    d_counts = cuda.device_array((n_samples, n_out), np.int64)
    d_v_end = cuda.device_array((n_samples, n_out))
    _launch(_forward_kernel, n_samples * n_out, d_times, d_ids, d_ptr, ea, eb, kap, kmax,
            cuda.to_device(np.arange(n_samples)), float(t_end), d_w, float(a), float(b),
            float(theta), bool(single_spike), int(method), int(max_spikes), cap, d_out_t,
            d_out_dv, d_counts, d_v_end)
    out_t = d_out_t.copy_to_host()[:, :, :cap]
    out_dv = d_out_dv.copy_to_host()[:, :, :cap]
    if cap != slots:
        out_t, out_dv = np.ascontiguousarray(out_t), np.ascontiguousarray(out_dv)
    return out_t, out_dv, d_counts.copy_to_host(), d_v_end.copy_to_host()


def _sample_groups(ptr, row_bytes, budget):
    """Consecutive sample ranges [s0, s1) whose input rows each fit in budget bytes."""
    n_samples = ptr.shape[0] - 1
    max_rows = max(1, budget // max(row_bytes, 1))
    groups = []
    s0 = 0
    while s0 < n_samples:
        s1 = s0 + 1
        while s1 < n_samples and ptr[s1 + 1] - ptr[s0] <= max_rows:
            s1 += 1
        groups.append((s0, s1))
        s0 = s1
    return groups


def _rows_by_input(ids_rows, n_in):
    """Stable order of rows grouped by input id, and the CSR starts of each id."""
    key = ids_rows.astype(np.uint16) if n_in <= 65536 else ids_rows
    order = np.argsort(key, kind="stable").astype(np.int64)
    iptr = np.zeros(n_in + 1, np.int64)
    np.cumsum(np.bincount(ids_rows, minlength=n_in), out=iptr[1:])
    return order, iptr


def layer_backward(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, counts, merged,
                   spk_g, nu, min_slope, want_input_grad):
    """GPU twin of ``eventsim._layer.layer_backward``: (grad_w (n_in, n_out), grad_in).

    ``merged`` (the layer's sorted spike list) is not needed here: each thread
    scans its own neuron's spikes."""
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n_samples = ptr.shape[0] - 1
    n_in, n_out = w.shape
    n_inputs = int(np.asarray(times).shape[0])
    grad_in = np.zeros(n_inputs)
    if n_samples == 0 or n_out == 0 or n_inputs == 0:
        return np.zeros((n_in, n_out)), grad_in
    d_times = _dev(times, np.float64)
    d_ids = _dev(ids, np.int64)
    d_ptr = cuda.to_device(ptr)
    d_w = _dev(w, np.float64)
    ea, eb, kap, _ = _interval_factors_dev(d_times, d_ptr, n_inputs, t_end, a, b)
    d_out_t = _dev(out_t, np.float64)
    d_out_dv = _dev(out_dv, np.float64)
    d_counts = _dev(counts, np.int64)
    d_spk_g = _dev(spk_g, np.float64)
    d_nu = _dev(nu, np.float64)
    d_grad_w = cuda.to_device(np.zeros((n_in, n_out)))
    d_grad_in = cuda.device_array(n_inputs)
    groups = _sample_groups(ptr, 2 * 8 * n_out, SCRATCH_BYTES)
    max_rows = max(int(ptr[s1] - ptr[s0]) for s0, s1 in groups)
    li_all = cuda.device_array((max(max_rows, 1), n_out))
    lt_all = cuda.device_array((max(max_rows, 1), n_out))
    for s0, s1 in groups:
        r0, r1 = int(ptr[s0]), int(ptr[s1])
        if r1 == r0:
            continue
        _launch(_backward_kernel, (s1 - s0) * n_out, d_times, d_ptr, ea, eb, kap,
                cuda.to_device(np.arange(s0, s1)), s0, cuda.to_device(ptr[s0:s1 + 1] - r0),
                float(t_end), float(a), float(b), float(theta), d_out_t, d_out_dv, d_counts,
                d_spk_g, d_nu, float(min_slope), li_all, lt_all)
        order, iptr = _rows_by_input(ids[r0:r1], n_in)
        _launch(_grad_w_kernel, n_in * n_out, cuda.to_device(order), cuda.to_device(iptr),
                li_all, d_grad_w)
        if want_input_grad:
            _launch(_grad_in_kernel, r1 - r0, d_ids, d_w, lt_all, r0, r1, d_grad_in)
    if want_input_grad:
        grad_in = d_grad_in.copy_to_host()
    return d_grad_w.copy_to_host(), grad_in


def layer_backward_merged(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, counts,
                          merged, g_spk, nu, min_slope, want_input_grad):
    """GPU twin of ``eventsim._layer.layer_backward_merged``: ``layer_backward`` with
    dL/ds given in the merged spike order (the next layer's input-time gradient)."""
    spk_g = _layer.scatter_spike_grads(g_spk, merged[1], merged[2], merged[3],
                                       counts.shape[1], out_t.shape[2])
    return layer_backward(times, ids, ptr, w, t_end, a, b, theta, out_t, out_dv, counts,
                          merged, spk_g, nu, min_slope, want_input_grad)


def readout_features(times, ids, ptr, n_in, t_out, a, b):
    """GPU twin of ``eventsim._layer.readout_features``: phi (B, n_in)."""
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    n_samples = ptr.shape[0] - 1
    n_in = int(n_in)
    if n_samples == 0 or n_in == 0:
        return np.zeros((n_samples, n_in))
    d_phi = cuda.device_array((n_samples, n_in))
    _launch(_readout_features_kernel, n_samples, _dev(times, np.float64), _dev(ids, np.int64),
            cuda.to_device(ptr), float(t_out), float(a), float(b), d_phi)
    return d_phi.copy_to_host()


# host bookkeeping shared with the CPU backend
merge_spikes = _layer.merge_spikes
scatter_spike_grads = _layer.scatter_spike_grads
dense_to_lists = _layer.dense_to_lists
readout_time_grads = _layer.readout_time_grads


# ---------------------------------------------------- device-resident training
class _DeviceSpikes:
    """Latency inputs x (N, n_in) resident on the GPU: per-sample time-sorted
    spike lists (CSR, as ``dense_to_lists``), their interval factors and, for
    training, ``position[s, i]``, the index of input i's spike within sample
    s's list (-1: no spike before t_end)."""

    def __init__(self, x, t_end, a, b, positions):
        times, ids, ptr = _layer.dense_to_lists(np.ascontiguousarray(x), t_end)
        self.ptr = ptr
        self.n_samples = ptr.shape[0] - 1
        self.times, self.ids = _dev(times, np.float64), _dev(ids, np.int64)
        self.d_ptr = cuda.to_device(ptr)
        self.ea, self.eb, self.kap, self.kmax = _interval_factors_dev(
            self.times, self.d_ptr, times.shape[0], t_end, a, b)
        self.position = None
        if positions:
            position = np.full(x.shape, -1, np.int32)
            sample = np.repeat(np.arange(self.n_samples), np.diff(ptr))
            position[sample, ids] = np.arange(times.shape[0]) - ptr[sample]
            self.position = cuda.to_device(position)


class ResidentTrainer:
    """Training of a network with one hidden layer with all heavy state on the GPU.

    The training set, the evaluation sets (``eval_sets``: name -> inputs, e.g.
    test and validation), weights, gradients and Adam moments live on the GPU.
    One step (``step``) runs: the hidden layer's forward scan (one thread per
    (sample, neuron), ``neuron_forward``), the readout of eq. 20 and
    v_out = phi @ W_out; then on the host the loss of eq. 24
    (``Network.loss``, from v_out, V_hidden(t_out) and the spike counts copied
    back, about 7 kB per sample); then dL/dW_out = phi^T dL/dv_out, the spike
    time gradients, the adjoint scans (``neuron_backward``), dL/dW_in summed per
    weight over the batch in sample order (no atomics: deterministic), and
    Adam (``adam_update``). The arithmetic is the CPU backend's, so results
    agree with device="cpu" to rounding.

    ``pull`` copies weights and Adam moments into the Network and Adam objects
    (for checkpoints); ``push`` uploads them (after a resume).
    """

    def __init__(self, net, opt, x_train, eval_sets: dict):
        if len(net.sizes) != 3:
            raise ValueError("ResidentTrainer trains networks with one hidden layer, got "
                             f"sizes {net.sizes}")
        self.net, self.opt = net, opt
        a, b = net.lif.rate_i, net.lif.rate_v
        self.train = _DeviceSpikes(net.check_inputs(x_train), net.t_out, a, b, positions=True)
        self.eval_sets = {name: _DeviceSpikes(net.check_inputs(x), net.t_out, a, b,
                                              positions=False)
                          for name, x in eval_sets.items() if len(x)}
        self.sizes = [w.size for w in net.weights]
        total = sum(self.sizes)
        self._flat = {name: cuda.to_device(np.zeros(total)) for name in ("w", "g", "m", "v")}
        self.weights = self._views("w")
        self.grads = self._views("g")
        self.cap = net._cap_hint[0]
        self._buffers = {}
        self._adjoint = None
        self.push()

    @staticmethod
    def synchronize():
        """Wait for the GPU to finish the queued kernels (for timing)."""
        cuda.synchronize()

    def _views(self, name):
        out, start = [], 0
        for w, size in zip(self.net.weights, self.sizes):
            out.append(self._flat[name][start:start + size].reshape(w.shape))
            start += size
        return out

    def push(self):
        """Upload the Network's weights and Adam's moments."""
        for name, arrays in (("w", self.net.weights), ("m", self.opt.m), ("v", self.opt.v)):
            self._flat[name].copy_to_device(np.concatenate([np.ravel(x) for x in arrays]))

    def pull(self):
        """Copy weights and Adam moments from the GPU into the Network and Adam."""
        self.net.weights = [w.copy_to_host() for w in self.weights]
        self.opt.m = [m.copy_to_host() for m in self._views("m")]
        self.opt.v = [v.copy_to_host() for v in self._views("v")]

    def _scratch(self, n_batch, cap):
        """GPU buffers for n_batch samples (views of buffers that are only ever grown)."""
        size_b, size_cap = self._buffers.get("size", (0, 0))
        if n_batch > size_b or cap > size_cap:
            size_b, size_cap = max(n_batch, size_b), max(cap, size_cap)
            n_hidden, n_out = self.net.sizes[1:]
            per_sample = dict(out_t=(n_hidden, size_cap), out_dv=(n_hidden, size_cap),
                              spk_g=(n_hidden, size_cap), v_end=(n_hidden,), phi=(n_hidden,),
                              h=(n_hidden,), nu=(n_hidden,), v_out=(n_out,), g_out=(n_out,))
            self._buffers = {name: cuda.device_array((size_b, *shape))
                             for name, shape in per_sample.items()}
            self._buffers["counts"] = cuda.device_array((size_b, n_hidden), np.int64)
            self._buffers["batch"] = cuda.device_array(size_b, np.int64)
            self._buffers["rows"] = cuda.device_array(size_b + 1, np.int64)
            self._buffers["size"] = (size_b, size_cap)
        return {name: arr[:n_batch + (name == "rows")] for name, arr in self._buffers.items()
                if name != "size"}

    def _adjoint_scratch(self, rows):
        """(lambda_I, a lambda_I - lambda_V) per (input spike row, hidden neuron)."""
        if self._adjoint is None or self._adjoint[0].shape[0] < rows:
            shape = (max(rows + rows // 4, 1), self.net.sizes[1])
            self._adjoint = (cuda.device_array(shape), cuda.device_array(shape))
        return self._adjoint

    def _forward(self, data, batch):
        """Hidden spikes, phi and v_out of samples ``batch`` of ``data`` (left on the GPU);
        returns (buffers, ForwardResult with host v_out, V_hidden, counts)."""
        net = self.net
        lif = net.lif
        n = batch.shape[0]

        def forward(cap):
            buf = self._scratch(n, cap)
            buf["batch"].copy_to_device(batch)
            _launch(_forward_kernel, n * net.sizes[1], data.times, data.ids, data.d_ptr,
                    data.ea, data.eb, data.kap, data.kmax, buf["batch"], float(net.t_out),
                    self.weights[0], lif.rate_i, lif.rate_v, lif.threshold,
                    bool(net.single_spike), int(net._method_code), int(net.max_spikes), cap,
                    buf["out_t"], buf["out_dv"], buf["counts"], buf["v_end"])
            return buf, buf["counts"].copy_to_host()

        buf, counts, self.cap = fit_spike_buffer(forward, self.cap, net.max_spikes)
        _launch(_hidden_readout_kernel, n * net.sizes[1], buf["out_t"], buf["counts"],
                float(net.t_out), lif.rate_i, lif.rate_v, buf["phi"])
        _launch(_matmul_kernel, n * net.sizes[2], buf["phi"], self.weights[1], buf["v_out"],
                False, False)
        res = ForwardResult(buf["v_out"].copy_to_host(), [buf["v_end"].copy_to_host()],
                            [counts], [], None, None)
        return buf, res

    def evaluate_batch(self, start, stop, which="test"):
        """ForwardResult (v_out, V_hidden, counts on the host) of samples [start, stop) of
        the evaluation set ``which``."""
        return self._forward(self.eval_sets[which], np.arange(start, stop, dtype=np.int64))[1]

    def step(self, batch, labels, dead_penalty, output_l2, lr):
        """One Adam step on training samples ``batch``; returns (loss, ForwardResult).

        The weights are not updated when the loss is not finite."""
        net = self.net
        lif = net.lif
        batch = np.ascontiguousarray(batch, np.int64)
        n, (n_in, n_hidden, n_out) = batch.shape[0], net.sizes
        buf, res = self._forward(self.train, batch)
        loss, g_out, g_hidden = net.loss(res, labels, dead_penalty, output_l2)
        if not np.isfinite(loss):
            return loss, res
        buf["g_out"].copy_to_device(np.ascontiguousarray(g_out))
        buf["nu"].copy_to_device(np.ascontiguousarray(g_hidden[0]))
        _launch(_matmul_kernel, n_hidden * n_out, buf["phi"], buf["g_out"], self.grads[1],
                True, False)
        _launch(_matmul_kernel, n * n_hidden, buf["g_out"], self.weights[1], buf["h"],
                False, True)
        _launch(_hidden_spike_grads_kernel, n * n_hidden, buf["out_t"], buf["counts"],
                buf["h"], float(net.t_out), lif.rate_i, lif.rate_v, buf["spk_g"])
        rows = np.zeros(n + 1, np.int64)
        np.cumsum(self.train.ptr[batch + 1] - self.train.ptr[batch], out=rows[1:])
        buf["rows"].copy_to_device(rows)
        li, lt = self._adjoint_scratch(int(rows[-1]))
        _launch(_backward_kernel, n * n_hidden, self.train.times, self.train.d_ptr,
                self.train.ea, self.train.eb, self.train.kap, buf["batch"], 0, buf["rows"],
                float(net.t_out), lif.rate_i, lif.rate_v, lif.threshold, buf["out_t"],
                buf["out_dv"], buf["counts"], buf["spk_g"], buf["nu"], float(net.min_slope),
                li, lt)
        _launch(_grad_w_by_position_kernel, n_in * n_hidden, self.train.position,
                buf["batch"], buf["rows"], li, self.grads[0])
        opt = self.opt
        opt.lr = lr
        c1, c2 = opt.next_step()
        _launch(_adam_kernel, self._flat["w"].shape[0], self._flat["w"], self._flat["g"],
                self._flat["m"], self._flat["v"], float(lr), opt.beta1, opt.beta2, opt.eps,
                c1, c2, float(opt.weight_decay))
        return loss, res


# ------------------------------------------------------------------ selection
def is_available() -> bool:
    """True when numba can run CUDA kernels here (always True under the simulator)."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install counts as "no GPU"
        return False


_BACKEND = None


def backend():
    """The CUDA backend: a namespace with the functions of ``eventsim._layer``.

    Raises RuntimeError when no usable CUDA GPU (or the simulator) is present.
    """
    global _BACKEND
    if not is_available():
        raise RuntimeError(
            "device='cuda' was requested but no CUDA GPU is available: numba.cuda found no "
            "usable CUDA driver/GPU (see `python -c \"from numba import cuda; cuda.detect()\"`); "
            "use device='cpu' (or set NUMBA_ENABLE_CUDASIM=1 before importing numba to run the "
            "CUDA kernels in numba's slow CPU simulator)")
    if _BACKEND is None:
        _BACKEND = types.SimpleNamespace(
            name="cuda",
            simulator=SIMULATOR,
            prepare_weights=prepare_weights,
            layer_forward=layer_forward,
            layer_backward=layer_backward,
            layer_backward_merged=layer_backward_merged,
            merge_spikes=merge_spikes,
            scatter_spike_grads=scatter_spike_grads,
            dense_to_lists=dense_to_lists,
            readout_features=readout_features,
            readout_time_grads=readout_time_grads,
        )
    return _BACKEND
