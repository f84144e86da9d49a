"""eventsim: exact event-driven simulation and exact-gradient training of multi-spike LIF SNNs."""

import os as _os

import numba as _numba

# numba's default OpenMP layer costs ~10 ms per parallel region when another
# process competes for the cores; the workqueue layer costs ~50 us. A user's
# NUMBA_THREADING_LAYER setting wins.
if "NUMBA_THREADING_LAYER" not in _os.environ:
    _numba.config.THREADING_LAYER = "workqueue"

from . import datasets  # noqa: E402
from ._evaluate import Evaluation, evaluate
from ._lif import LIF
from ._network import ForwardResult, Network
from ._network_sim import simulate_network
from ._simulate import SpikeLimitError, membrane, simulate_layer
from ._spikes import Spikes
from ._train import Dataset, TrainConfig, Trainer
from .datasets import DataError, MissingDataError, latency_encode, mnist

__all__ = ["DataError", "Dataset", "Evaluation", "ForwardResult", "LIF", "MissingDataError",
           "Network", "SpikeLimitError", "Spikes", "TrainConfig", "Trainer", "datasets",
           "evaluate", "latency_encode", "membrane", "mnist", "simulate_layer",
           "simulate_network"]
__version__ = "0.1.0"
