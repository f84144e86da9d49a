"""Random layer cases shared by ``validation.compare`` and the test suite.

A case is one sample: input spike times/ids, a weight matrix and time
constants, with weights scaled so that a typical neuron fires 0-10 times
before t_end = 1. Pure NumPy, independent of eventsim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Case", "TAUS", "random_case", "kappa_peak_value"]

#: (tau_i, tau_v) per leak ratio p = tau_i / tau_v used by the comparisons
TAUS = {
    2.0: (0.8, 0.4),
    1.0: (0.5, 0.5),
    0.5: (0.3, 0.6),
    3.7: (1.11, 0.3),
    1.0001: (0.50005, 0.5),
}


@dataclass
class Case:
    times: np.ndarray
    ids: np.ndarray
    weights: np.ndarray
    tau_i: float
    tau_v: float
    threshold: float = 1.0
    t_end: float = 1.0

    @property
    def n_out(self) -> int:
        return self.weights.shape[1]


def kappa_peak_value(tau_i: float, tau_v: float) -> float:
    """max_s of the PSP kernel (e^{-s/tau_i} - e^{-s/tau_v}) / (1/tau_v - 1/tau_i), by sampling."""
    s = np.linspace(0.0, 10.0 * max(tau_i, tau_v), 20001)
    if tau_i == tau_v:
        k = s * np.exp(-s / tau_v)
    else:
        k = (np.exp(-s / tau_i) - np.exp(-s / tau_v)) / (1.0 / tau_v - 1.0 / tau_i)
    return float(k.max())


def random_case(rng: np.random.Generator, tau_i: float, tau_v: float, n_in=None, n_out=None,
                n_spikes=None, threshold: float = 1.0, t_end: float = 1.0, ties: bool | None = None,
                max_drive: float = 5.0) -> Case:
    """One random layer: ~5-20 neurons, 10-60 input spikes, 0-10 output spikes per neuron.

    Each output neuron j gets a drive level D_j ~ U(0.5, max_drive) (steady-state
    V of the mean input, in units of the threshold) and weight noise of the
    order of the single-input firing weight threshold / max(kappa), so the
    membrane is bumpy, with several local maxima near threshold. With ``ties``
    the times are rounded to a 1/32 grid (simultaneous inputs, inputs at 0);
    a few inputs at or after t_end (and +inf) are added, which must be ignored.
    """
    n_in = int(rng.integers(5, 31)) if n_in is None else n_in
    n_out = int(rng.integers(5, 21)) if n_out is None else n_out
    n_spikes = int(rng.integers(10, 61)) if n_spikes is None else n_spikes
    ties = bool(rng.random() < 0.3) if ties is None else ties
    times = rng.uniform(0.0, t_end, n_spikes)
    if ties:
        times = np.floor(times * 32.0 / t_end) * (t_end / 32.0)
    ids = rng.integers(0, n_in, n_spikes)
    rate = max(n_spikes, 1) / t_end
    drive = rng.uniform(0.5, max_drive, n_out)
    mu = threshold * drive / (rate * tau_i * tau_v)
    w_one = threshold / kappa_peak_value(tau_i, tau_v)
    sigma = w_one * rng.uniform(0.05, 0.5, n_out)
    weights = mu[None, :] + sigma[None, :] * rng.standard_normal((n_in, n_out))
    # inputs that must be ignored
    extra = int(rng.integers(0, 3))
    if extra:
        late = np.where(rng.random(extra) < 0.5, t_end, np.inf) + rng.uniform(0, 0.1, extra)
        late[0] = t_end
        times = np.concatenate([times, late])
        ids = np.concatenate([ids, rng.integers(0, n_in, extra)])
    perm = rng.permutation(times.shape[0])
    return Case(times[perm], ids[perm].astype(np.int64), weights, float(tau_i), float(tau_v),
                float(threshold), float(t_end))
