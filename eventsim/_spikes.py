"""The spike-train container returned by the simulators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_ids, check_int, check_spike_times


@dataclass(frozen=True)
class Spikes:
    """Spikes of a population, sorted by time then neuron id.

    ``Spikes(times, ids, n_neurons)`` checks its arguments (finite times >= 0,
    integer ids in [0, n_neurons), one per time) and sorts them by (time, id).

    Attributes
    ----------
    times : float64 array (n_spikes,)
    ids : int64 array (n_spikes,), neuron index of each spike
    n_neurons : int, size of the population the ids index into
    """

    times: np.ndarray
    ids: np.ndarray
    n_neurons: int

    def __post_init__(self):
        n_neurons = check_int(self.n_neurons, "n_neurons", 0)
        if n_neurons > np.iinfo(np.int64).max:   # ids are int64
            raise ValueError(f"n_neurons must be < 2**63 (ids are int64), got {n_neurons}")
        times = check_spike_times(self.times, "Spikes.times", allow_inf=False)
        ids = check_ids(self.ids, n_neurons, times.shape[0], "Spikes.ids", n_is="n_neurons")
        later = times[1:] > times[:-1]
        tied = (times[1:] == times[:-1]) & (ids[1:] >= ids[:-1])
        if not np.all(later | tied):
            order = np.lexsort((ids, times))
            times, ids = times[order], ids[order]
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "n_neurons", n_neurons)

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def counts(self) -> np.ndarray:
        """Number of spikes of each neuron, shape (n_neurons,)."""
        return np.bincount(self.ids, minlength=self.n_neurons).astype(np.int64)

    def of(self, neuron: int) -> np.ndarray:
        """Spike times of one neuron, increasing."""
        neuron = check_int(neuron, "neuron", 0)
        if neuron >= self.n_neurons:
            raise ValueError(f"neuron must be < n_neurons = {self.n_neurons}, got {neuron}")
        return self.times[self.ids == neuron]

    def __eq__(self, other) -> bool:
        if not isinstance(other, Spikes):
            return NotImplemented
        return (self.n_neurons == other.n_neurons and np.array_equal(self.times, other.times)
                and np.array_equal(self.ids, other.ids))

    def __repr__(self) -> str:
        return f"Spikes(n_spikes={len(self)}, n_neurons={self.n_neurons})"
