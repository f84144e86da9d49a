"""Multi-layer feed-forward SNN with exact spike-timing gradients (paper Sec. II).

Hidden layers are multi-spike (or single-spike) LIF layers simulated exactly;
the output layer never fires and is read out as its membrane potential at
t_out (eq. 20). Since that readout is linear in the weights,
v_out = phi @ W_out with phi[b, i] = sum over spikes t of presynaptic neuron i
of kappa(t_out - t), which is how it is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _layer
from ._lif import LIF
from ._losses import dead_neuron_flags, dead_neuron_penalty, output_l2, softmax_cross_entropy
from ._simulate import DEFAULT_MAX_SPIKES, run_layer
from ._spikes import Spikes
from ._validate import (check_bool, check_finite, check_input_times, check_int, check_labels,
                        check_layer_sizes, check_lif, check_max_spikes, check_method,
                        check_nonnegative, check_seed, check_t_end, check_weights)

INIT_MEAN = 0.03
INIT_STD = math.sqrt(0.3)


@dataclass
class _Layer:
    """What the backward pass needs of one hidden layer."""
    inputs: tuple          # (times, ids, ptr) of its input spikes
    out_t: np.ndarray      # (B, J, cap) spike times
    out_dv: np.ndarray     # (B, J, cap) dV/dt just before each spike
    counts: np.ndarray     # (B, J)
    v_end: np.ndarray      # (B, J) V(t_out)
    merged: tuple          # (times, ids, ptr, src_n): its spikes as the next layer's input


@dataclass
class ForwardResult:
    """Result of ``Network.forward`` on a batch.

    v_out : (B, n_out) output membrane potentials at t_out (eq. 20)
    v_hidden : list of (B, n_hidden_l), hidden membrane potentials at t_out
    spike_counts : list of (B, n_hidden_l) int
    """
    v_out: np.ndarray
    v_hidden: list
    spike_counts: list
    _layers: list = field(repr=False)
    _inputs: tuple = field(repr=False)
    _phi: np.ndarray = field(repr=False)

    def spikes(self, layer: int, sample: int) -> Spikes:
        """Spikes of hidden layer ``layer`` (0-based) for batch element ``sample``."""
        if check_int(layer, "layer", 0) >= len(self._layers):
            raise ValueError(f"layer must be in [0, {len(self._layers)}), got {layer}")
        hidden = self._layers[layer]
        if check_int(sample, "sample", 0) >= hidden.counts.shape[0]:
            raise ValueError(f"sample must be in [0, {hidden.counts.shape[0]}), got {sample}")
        times, ids, ptr, _ = hidden.merged
        lo, hi = ptr[sample], ptr[sample + 1]
        return Spikes(times[lo:hi].copy(), ids[lo:hi].copy(), hidden.counts.shape[1])


class Network:
    """Feed-forward multi-spike SNN, e.g. ``Network([784, 400, 10], LIF(0.8, 0.4))``.

    Parameters
    ----------
    sizes : list of int, at least [n_in, n_out]; the middle entries are hidden layers.
    lif : LIF shared by all layers (output neurons use it with an infinite threshold).
    t_out : float, observation time of the output membrane and end of the simulation.
    single_spike : bool, TTFS restriction for hidden neurons.
    seed : int, seed of the initial weights.
    init_mean, init_std : initial weights ~ Normal(init_mean, init_std**2); the defaults
        are the paper's mean 0.03 and variance 0.3 (std 0.548).
    method : "auto" | "closed_form" | "root", the crossing solver (see simulate_layer).
    min_slope : float >= 0, optional gradient clip: dV/dt at a crossing is taken
        as at least min_slope in the backward pass (0 = exact gradients).
    max_spikes_per_neuron : int, per neuron and sample; more raises SpikeLimitError.
    device : "cpu" (numba) or "cuda" (numba.cuda; RuntimeError without a GPU).
    """

    def __init__(self, sizes, lif: LIF, t_out=1.0, single_spike=False, seed=0, method="auto",
                 max_spikes_per_neuron=DEFAULT_MAX_SPIKES, min_slope=0.0, device="cpu",
                 init_mean=INIT_MEAN, init_std=INIT_STD):
        self.sizes = check_layer_sizes(sizes, "sizes", min_layers=2)
        self._set_solver(check_lif(lif), method)
        self.t_out = check_t_end(t_out, "t_out")
        self.single_spike = check_bool(single_spike, "single_spike")
        self.max_spikes = check_max_spikes(max_spikes_per_neuron)
        self.min_slope = check_nonnegative(min_slope, "min_slope")
        self.seed = check_seed(seed)
        self.device = device
        self._backend = _select_backend(device)
        init_mean = check_finite(init_mean, "init_mean")
        init_std = check_nonnegative(init_std, "init_std")
        rng = np.random.default_rng(seed)
        self._weights = [rng.normal(init_mean, init_std, (n, m))
                         for n, m in zip(sizes[:-1], sizes[1:])]
        self._cap_hint = [1 if single_spike else 16] * (len(sizes) - 2)

    @property
    def lif(self) -> LIF:
        """The neurons' time constants and threshold (shared by every layer)."""
        return self._lif

    @lif.setter
    def lif(self, lif):
        self._set_solver(check_lif(lif), self._method)

    @property
    def method(self) -> str:
        """The crossing solver: "auto", "closed_form" (p = 2 only) or "root"."""
        return self._method

    @method.setter
    def method(self, method):
        self._set_solver(self._lif, method)

    def _set_solver(self, lif, method):
        """Set lif and method together: the solver code depends on both ("auto"
        follows p, "closed_form" needs p = 2)."""
        self._method_code = check_method(method, lif)
        self._lif, self._method = lif, method

    # ------------------------------------------------------------------ weights
    @property
    def weights(self) -> list:
        """List of float64 weight arrays, shapes (sizes[l], sizes[l+1])."""
        return self._weights

    @weights.setter
    def weights(self, new):
        new = list(new)
        if len(new) != len(self.sizes) - 1:
            raise ValueError(f"expected {len(self.sizes) - 1} weight arrays, got {len(new)}")
        self._weights = [check_weights(w, f"weights[{l}]", (self.sizes[l], self.sizes[l + 1]))
                         for l, w in enumerate(new)]   # float64 copies

    @property
    def n_hidden_layers(self) -> int:
        return len(self.sizes) - 2

    # ------------------------------------------------------------------ forward
    def check_inputs(self, x) -> np.ndarray:
        """x: (B, n_in) latency spike times, >= 0, np.inf = no spike."""
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"x must have shape (batch, {self.sizes[0]}), got {np.shape(x)}")
        return check_input_times(x, "x")

    def forward(self, x) -> ForwardResult:
        """Exact forward pass on a batch of latency-coded inputs x (B, n_in).

        A 1-D x is one sample (B = 1)."""
        return self._forward(self.check_inputs(x))

    def _forward(self, x) -> ForwardResult:
        """forward on x already checked by check_inputs."""
        be = self._backend
        lif, t_out = self.lif, self.t_out
        a, b = lif.rate_i, lif.rate_v
        inputs = be.dense_to_lists(x, t_out)
        current = inputs
        layers = []
        for l, w in enumerate(self._weights[:-1]):
            out_t, out_dv, counts, v_end = run_layer(
                *current, w, lif, t_out, self.single_spike, self._method_code,
                self.max_spikes, backend=be, cap=self._cap_hint[l])
            # buffer size for the next batch: room to grow without a rerun
            most = int(counts.max()) if counts.size else 0
            self._cap_hint[l] = max(self._cap_hint[l], 1 if self.single_spike else
                                    most + most // 4 + 2)
            merged = be.merge_spikes(out_t, counts)
            layers.append(_Layer(current, out_t, out_dv, counts, v_end, merged))
            current = merged[:3]
        phi = be.readout_features(*current, self.sizes[-2], t_out, a, b)
        with np.errstate(over="ignore", invalid="ignore"):   # _check_overflow says it
            v_out = _layer.matmul(phi, self._weights[-1])
        v_hidden = [h.v_end for h in layers]
        self._check_overflow(v_out, v_hidden)
        return ForwardResult(v_out, v_hidden, [h.counts for h in layers], layers, inputs, phi)

    def _check_overflow(self, v_out, v_hidden):
        """FloatingPointError if a membrane potential at t_out overflowed float64
        (inf, or NaN from inf - inf): only weights near the float64 limit do that."""
        for name, v in [("v_out", v_out)] + [(f"V(t_out) of hidden layer {l}", v)
                                              for l, v in enumerate(v_hidden)]:
            if not np.isfinite(v).all():
                largest = max(float(np.abs(w).max(initial=0.0)) for w in self._weights)
                raise FloatingPointError(
                    f"the forward pass overflowed float64 ({name} holds inf or NaN): the "
                    f"weights are too large (largest |w| = {largest:.3g}); scale them down")

    # ----------------------------------------------------------------- backward
    def backward(self, res: ForwardResult, grad_v_out, grad_v_hidden=None, wrt_inputs=False):
        """Exact gradients of a loss given dL/dv_out (B, n_out) and dL/dv_hidden.

        grad_v_hidden: list (one (B, n_hidden_l) array per hidden layer) or None.
        Returns the list of weight gradients, plus dL/dx (B, n_in) if wrt_inputs.
        dL/dx is 0 for inputs after t_out and, as the derivative from the right,
        for inputs at exactly t_out (moving such an input earlier does change
        the loss). The gradients are those of the network's current weights,
        which must be the weights ``res`` was computed with.
        """
        wrt_inputs = check_bool(wrt_inputs, "wrt_inputs")
        be = self._backend
        lif, t_out = self.lif, self.t_out
        a, b, theta = lif.rate_i, lif.rate_v, lif.threshold
        grad_v_out = np.asarray(grad_v_out, np.float64)
        if grad_v_out.shape != res.v_out.shape:
            raise ValueError(f"grad_v_out must have shape {res.v_out.shape}, got "
                             f"{grad_v_out.shape}")
        if grad_v_hidden is not None and len(grad_v_hidden) != len(res._layers):
            raise ValueError(f"grad_v_hidden must hold {len(res._layers)} arrays (or None), "
                             f"got {len(grad_v_hidden)}")
        grads = [None] * len(self._weights)
        grads[-1] = _layer.matmul(res._phi.T, grad_v_out)
        h = _layer.matmul(grad_v_out, self._weights[-1].T)
        last_inputs = res._layers[-1].merged[:3] if res._layers else res._inputs
        need_times = bool(res._layers) or wrt_inputs
        g_times = be.readout_time_grads(*last_inputs, h, t_out, a, b) if need_times else None
        for l in range(len(res._layers) - 1, -1, -1):
            hidden = res._layers[l]
            nu = np.zeros_like(hidden.v_end) if grad_v_hidden is None or \
                grad_v_hidden[l] is None else np.asarray(grad_v_hidden[l], np.float64)
            if nu.shape != hidden.v_end.shape:
                raise ValueError(f"grad_v_hidden[{l}] must have shape {hidden.v_end.shape}, "
                                 f"got {nu.shape}")
            grads[l], g_times = be.layer_backward_merged(
                *hidden.inputs, be.prepare_weights(self._weights[l]), t_out, a, b, theta,
                hidden.out_t, hidden.out_dv, hidden.counts, hidden.merged, g_times, nu,
                self.min_slope, l > 0 or wrt_inputs)
        if not wrt_inputs:
            return grads
        times, ids, ptr = res._inputs
        grad_x = np.zeros((ptr.shape[0] - 1, self.sizes[0]))
        sample = np.repeat(np.arange(ptr.shape[0] - 1), np.diff(ptr))
        np.add.at(grad_x, (sample, ids), g_times)
        return grads, grad_x

    def loss(self, res: ForwardResult, labels, dead_penalty=0.01, output_l2_weight=1e-4,
             dead_flags=None):
        """Eq. 24 averaged over the batch; returns (loss, dL/dv_out, [dL/dv_hidden])."""
        if res.v_out.shape[0] == 0:
            raise ValueError("the loss of an empty batch is undefined; pass at least one sample")
        labels = self.check_labels(labels, res.v_out.shape[0])
        dead_penalty = check_nonnegative(dead_penalty, "dead_penalty")
        output_l2_weight = check_nonnegative(output_l2_weight, "output_l2")
        loss, g_out = softmax_cross_entropy(res.v_out, labels)
        l2, g_l2 = output_l2(res.v_out)
        loss += output_l2_weight * l2
        g_out = g_out + output_l2_weight * g_l2
        g_hidden = []
        if dead_flags is not None and len(dead_flags) != len(res.v_hidden):
            raise ValueError(f"dead_flags must hold one bool array per hidden layer "
                             f"({len(res.v_hidden)}), got {len(dead_flags)}")
        for l, (v_h, counts) in enumerate(zip(res.v_hidden, res.spike_counts)):
            if dead_flags is None:
                flags = dead_neuron_flags(counts)
            else:
                flags = np.asarray(dead_flags[l], dtype=bool)
                if flags.shape != (v_h.shape[1],):
                    raise ValueError(f"dead_flags[{l}] must have shape ({v_h.shape[1]},), "
                                     f"got {flags.shape}")
            lc, g_c = dead_neuron_penalty(v_h, flags, self.lif.threshold)
            loss += dead_penalty * lc
            g_hidden.append(dead_penalty * g_c)
        return loss, g_out, g_hidden

    def check_labels(self, labels, n) -> np.ndarray:
        """labels as int64 after checking: shape (n,), integer dtype, in [0, n_out)."""
        return check_labels(labels, n, self.sizes[-1])

    def loss_and_grad(self, x, labels, dead_penalty=0.01, output_l2=1e-4, dead_flags=None,
                      wrt_inputs=False):
        """Loss of eq. 24 (batch mean) and its exact gradient w.r.t. every weight.

        loss = CE(softmax(v_out), label) + dead_penalty * sum_l L_c^l (eq. 22,
        dead flags by the paper's rule unless ``dead_flags`` is given)
        + output_l2 * mean(v_out**2).
        Returns (loss, grads), or (loss, grads, dL/dx) when wrt_inputs=True.
        """
        wrt_inputs = check_bool(wrt_inputs, "wrt_inputs")
        x = self.check_inputs(x)
        labels = self.check_labels(labels, x.shape[0])
        res = self._forward(x)
        loss, g_out, g_hidden = self.loss(res, labels, dead_penalty, output_l2, dead_flags)
        out = self.backward(res, g_out, g_hidden, wrt_inputs=wrt_inputs)
        if wrt_inputs:
            return loss, out[0], out[1]
        return loss, out

    def save(self, path):
        """Save configuration and weights to an HDF5 file (written atomically)."""
        from ._io import save_checkpoint
        save_checkpoint(path, self)

    @classmethod
    def load(cls, path, device="cpu") -> "Network":
        """Rebuild a Network saved by ``save`` or by the trainer's checkpoints."""
        from ._io import load_checkpoint
        _select_backend(device)   # a bad device or no GPU: its own error, before any I/O
        data = load_checkpoint(path)
        try:
            cfg = dict(data["network"])
            lif = LIF(cfg.pop("tau_i"), cfg.pop("tau_v"), cfg.pop("threshold"))
            net = cls(cfg.pop("sizes"), lif, device=device, **cfg)
            net.weights = data["weights"]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} holds network settings {data['network']} that do not "
                             f"make a Network ({type(err).__name__}: {err})") from err
        return net

    def predict(self, x, batch_size=1000) -> np.ndarray:
        """Class index = argmax of v_out, computed in batches; a tie goes to the
        lowest index (so a silent network predicts class 0 for every sample)."""
        batch_size = check_int(batch_size, "batch_size", 1)
        x = self.check_inputs(x)
        return np.concatenate([np.empty(0, np.int64)] +
                              [self._forward(x[i:i + batch_size]).v_out.argmax(axis=1)
                               for i in range(0, x.shape[0], batch_size)])


def _select_backend(device: str):
    if device == "cpu":
        return _layer
    if device == "cuda":
        from . import _cuda
        return _cuda.backend()
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
