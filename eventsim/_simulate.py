"""Host API of the exact simulator: ``simulate_layer`` and ``membrane``."""

from __future__ import annotations

import math

import numpy as np

from . import _layer
from ._lif import LIF
from ._math import jit, kappa
from ._spikes import Spikes
from ._validate import (check_bool, check_ids, check_lif, check_max_spikes, check_method,
                        check_spike_times, check_t_end, check_weights)

DEFAULT_MAX_SPIKES = 10_000
_INITIAL_CAP = 16


class SpikeLimitError(RuntimeError):
    """A neuron fired more than ``max_spikes_per_neuron`` times."""


def prepare_inputs(times, ids, weights, t_end):
    """Validate one sample's input spikes; keep those before t_end, sorted by (time, id)."""
    weights = check_weights(weights)
    times = check_spike_times(times)
    ids = check_ids(ids, weights.shape[0], times.shape[0])
    keep = times < t_end
    times, ids = times[keep], ids[keep]
    order = np.lexsort((ids, times))
    return times[order], ids[order], weights


def fit_spike_buffer(forward, cap, max_spikes):
    """Call ``forward(cap) -> (result, counts)`` with a larger per-neuron spike
    buffer ``cap`` until every neuron's spikes fit; returns (result, counts, cap).

    Raises SpikeLimitError when a neuron fires more than max_spikes times.
    """
    cap = max(1, min(int(cap), max_spikes + 1))
    while True:
        result, counts = forward(cap)
        most = int(counts.max()) if counts.size else 0
        if most > max_spikes:
            s, j = np.unravel_index(int(np.argmax(counts)), counts.shape)
            raise SpikeLimitError(
                f"neuron {j} (sample {s}) fired more than max_spikes_per_neuron={max_spikes} "
                "times before t_end; check the weights' scale or raise max_spikes_per_neuron")
        if most <= cap:
            return result, counts, cap
        cap = most


def run_layer(times, ids, ptr, weights, lif: LIF, t_end, single_spike, method, max_spikes,
              backend=_layer, cap=_INITIAL_CAP):
    """Run ``backend.layer_forward``, growing the per-neuron spike buffer until it fits.

    Returns (out_t, out_dv, counts, v_end); raises SpikeLimitError when a neuron
    exceeds max_spikes. ``cap`` is the first buffer size tried (the run is
    repeated with a larger one when a neuron overflows it).
    """
    w = backend.prepare_weights(weights)

    def forward(cap):
        out = backend.layer_forward(times, ids, ptr, w, t_end, lif.rate_i, lif.rate_v,
                                    lif.threshold, single_spike, method, max_spikes, cap)
        return out, out[2]

    return fit_spike_buffer(forward, cap, max_spikes)[0]


def simulate_layer(times, ids, weights, lif: LIF, t_end=1.0, single_spike=False,
                   method="auto", max_spikes_per_neuron=DEFAULT_MAX_SPIKES) -> Spikes:
    """Exact output spikes of a layer of LIF neurons driven by input spikes.

    Parameters
    ----------
    times : (n_spikes,) float
        Presynaptic spike times, any order, ties allowed, >= 0. Inputs at or
        after ``t_end`` (including +inf, "never") are ignored.
    ids : (n_spikes,) int
        Presynaptic neuron of each spike, in [0, weights.shape[0]).
    weights : (n_in, n_out) float
        weights[i, j] is the jump of neuron j's current I at a spike of input i.
    lif : LIF
    t_end : float
        End of the simulation; a spike at exactly t_end is not counted.
    single_spike : bool
        TTFS restriction: each neuron fires at most once. After that spike V
        resets to 0 and keeps integrating its input, but never fires again.
    method : "auto" | "closed_form" | "root"
        "closed_form" is eq. 19 (p == 2 only); "root" is a safeguarded Newton
        solver (any p); "auto" picks "closed_form" when p == 2.
    max_spikes_per_neuron : int
        Guard against runaway firing: exceeding it raises SpikeLimitError.

    Returns
    -------
    Spikes with every output spike time (float64, < t_end), sorted by time then id.
    The search is exact: V never exceeds the threshold between reported spikes.
    """
    lif = check_lif(lif)
    t_end = check_t_end(t_end)
    single_spike = check_bool(single_spike, "single_spike")
    method_code = check_method(method, lif)
    max_spikes = check_max_spikes(max_spikes_per_neuron)
    times, ids, weights = prepare_inputs(times, ids, weights, t_end)
    ptr = np.array([0, times.shape[0]], np.int64)
    out_t, _, counts, _ = run_layer(times, ids, ptr, weights, lif, t_end, single_spike,
                                    method_code, max_spikes)
    spike_times, spike_ids, _, _ = _layer.merge_spikes(out_t, counts)
    return Spikes(spike_times, spike_ids, weights.shape[1])


@jit
def _membrane_one(j, in_times, in_ids, w, spk_times, eval_times, a, b, v_out, i_out):
    """March neuron j through its inputs, its own resets and the (sorted) eval times."""
    v = 0.0
    cur = 0.0
    t = 0.0
    k = 0
    m = 0
    for e in range(eval_times.shape[0]):
        te = eval_times[e]
        while True:
            t_in = in_times[k] if k < in_times.shape[0] else math.inf
            t_sp = spk_times[m] if m < spk_times.shape[0] else math.inf
            t_next = min(t_in, t_sp)
            if t_next > te:
                break
            gap = t_next - t
            v = v * math.exp(-b * gap) + cur * kappa(gap, a, b)
            cur = cur * math.exp(-a * gap)
            t = t_next
            if t_in <= t_sp:
                cur += w[in_ids[k], j]
                k += 1
            else:
                v = 0.0
                m += 1
        gap = te - t
        v_out[e] = v * math.exp(-b * gap) + cur * kappa(gap, a, b)
        i_out[e] = cur * math.exp(-a * gap)


def membrane(times, ids, weights, lif: LIF, out: Spikes, t_eval):
    """Membrane potential V and synaptic current I of every output neuron at ``t_eval``.

    Propagates the exact solution between events, resetting V to 0 at each
    spike listed in ``out`` (normally the result of ``simulate_layer`` for the
    same inputs). Right-continuous: an input or a spike at exactly t_eval is
    applied, so V == 0 at a spike time. V has no threshold here: past the
    ``t_end`` that ``out`` was simulated to, it integrates on without firing.

    Returns V, I: arrays of shape (len(t_eval), n_out).
    """
    lif = check_lif(lif)
    weights = check_weights(weights)
    times = check_spike_times(times)
    ids = check_ids(ids, weights.shape[0], times.shape[0])
    if not isinstance(out, Spikes):
        raise ValueError(f"out must be an eventsim.Spikes (from simulate_layer), got "
                         f"{type(out).__name__}")
    n_out = weights.shape[1]
    if out.n_neurons != n_out:
        raise ValueError(f"out has {out.n_neurons} neurons but weights has {n_out} columns")
    t_eval = check_spike_times(t_eval, "t_eval", allow_inf=False)
    order = np.lexsort((ids, times))
    times, ids = times[order], ids[order]
    finite = np.isfinite(times)
    times, ids = times[finite], ids[finite]
    eval_order = np.argsort(t_eval, kind="stable")
    sorted_eval = t_eval[eval_order]
    V = np.empty((t_eval.shape[0], n_out))
    I = np.empty((t_eval.shape[0], n_out))
    v_col = np.empty(t_eval.shape[0])
    i_col = np.empty(t_eval.shape[0])
    for j in range(n_out):
        _membrane_one(j, times, ids, weights, np.sort(out.of(j)), sorted_eval,
                      lif.rate_i, lif.rate_v, v_col, i_col)
        V[eval_order, j] = v_col
        I[eval_order, j] = i_col
    return V, I
