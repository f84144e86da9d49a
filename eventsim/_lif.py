"""The current-based LIF neuron model (paper eqs. 1-4)."""

from __future__ import annotations

from dataclasses import dataclass

from ._validate import check_positive, check_time_constant


@dataclass(frozen=True)
class LIF:
    """Current-based leaky integrate-and-fire neuron with membrane-only reset.

    Between input spikes (paper eqs. 2-3, with beta_I = beta_V = 1)::

        dI/dt = -I / tau_i + sum_k w_k delta(t - t_k)
        dV/dt = -V / tau_v + I

    When V reaches ``threshold`` the neuron spikes and V is reset to 0 (eq. 4);
    the synaptic current I is *not* reset. Times are in the same (arbitrary)
    unit as ``tau_i`` and ``tau_v``; V and ``threshold`` are dimensionless and a
    weight w is the jump of I (units of 1/time) caused by one input spike.

    Parameters
    ----------
    tau_i, tau_v : float
        Synaptic-current and membrane time constants, > 0 with finite
        reciprocals (tau >= ~5.6e-309). Any ratio
        ``p = tau_i / tau_v`` is allowed, including p = 1.
    threshold : float
        Firing threshold, > 0 (the paper uses 1).
    """

    tau_i: float = 0.8
    tau_v: float = 0.4
    threshold: float = 1.0

    def __post_init__(self):
        for name in ("tau_i", "tau_v"):
            object.__setattr__(self, name, check_time_constant(getattr(self, name), name))
        object.__setattr__(self, "threshold", check_positive(self.threshold, "threshold"))

    @property
    def p(self) -> float:
        """The leak ratio p = tau_i / tau_v."""
        return self.tau_i / self.tau_v

    @property
    def rate_i(self) -> float:
        """a = 1 / tau_i, the decay rate of the synaptic current."""
        return 1.0 / self.tau_i

    @property
    def rate_v(self) -> float:
        """b = 1 / tau_v, the decay rate of the membrane potential."""
        return 1.0 / self.tau_v
