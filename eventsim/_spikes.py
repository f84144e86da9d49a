"""The spike-train container returned by the simulators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_spike_times


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
        n_neurons = self.n_neurons
        is_int = isinstance(n_neurons, (int, np.integer)) and not isinstance(n_neurons, bool)
        if not is_int or n_neurons < 0:
            raise ValueError(f"n_neurons must be an integer >= 0, got {n_neurons!r}")
        times = check_spike_times(self.times, "Spikes.times", allow_inf=False)
        ids = np.asarray(self.ids)
        if ids.shape != times.shape:
            raise ValueError(f"Spikes.ids must have one entry per spike time {times.shape}, "
                             f"got shape {ids.shape}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"Spikes.ids must have an integer dtype, got {ids.dtype}")
        ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= n_neurons):
            raise ValueError(f"Spikes.ids must lie in [0, {n_neurons}) (n_neurons), found "
                             f"{int(ids[(ids < 0) | (ids >= n_neurons)][0])}")
        later = times[1:] > times[:-1]
        tied = (times[1:] == times[:-1]) & (ids[1:] >= ids[:-1])
        if not np.all(later | tied):
            order = np.lexsort((ids, times))
            times, ids = times[order], ids[order]
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "n_neurons", int(n_neurons))

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def counts(self) -> np.ndarray:
        """Number of spikes of each neuron, shape (n_neurons,)."""
        return np.bincount(self.ids, minlength=self.n_neurons).astype(np.int64)

    def of(self, neuron: int) -> np.ndarray:
        """Spike times of one neuron, increasing."""
        return self.times[self.ids == neuron]

    def __eq__(self, other) -> bool:
        if not isinstance(other, Spikes):
            return NotImplemented
        return (self.n_neurons == other.n_neurons and np.array_equal(self.times, other.times)
                and np.array_equal(self.ids, other.ids))

    def __repr__(self) -> str:
        return f"Spikes(n_spikes={len(self)}, n_neurons={self.n_neurons})"
