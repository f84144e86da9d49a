"""eventsim: exact event-driven simulation and exact-gradient training of multi-spike LIF SNNs."""

from ._lif import LIF
from ._network import ForwardResult, Network
from ._network_sim import simulate_network
from ._simulate import SpikeLimitError, membrane, simulate_layer
from ._spikes import Spikes

__all__ = ["ForwardResult", "LIF", "Network", "Spikes", "SpikeLimitError", "membrane", "simulate_layer", "simulate_network"]
__version__ = "0.1.0"
