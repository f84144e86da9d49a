"""The spike-train container returned by the simulators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spikes:
    """Spikes of a population, sorted by time then neuron id.

    Attributes
    ----------
    times : float64 array (n_spikes,)
    ids : int64 array (n_spikes,), neuron index of each spike
    n_neurons : int, size of the population the ids index into
    """

    times: np.ndarray
    ids: np.ndarray
    n_neurons: int

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


def make_spikes(times, ids, n_neurons: int) -> Spikes:
    """Build a Spikes object, sorting by (time, id)."""
    times = np.asarray(times, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    order = np.lexsort((ids, times))
    return Spikes(times[order], ids[order], int(n_neurons))
