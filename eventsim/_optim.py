"""Adam optimiser (Kingma & Ba) over a list of NumPy arrays."""

from __future__ import annotations

import numpy as np


class Adam:
    """Adam with bias correction, updating a list of float64 arrays in place.

    State (``step``, first and second moments) is plain arrays so it can be
    checkpointed and restored exactly.
    """

    def __init__(self, shapes, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.lr, self.beta1, self.beta2, self.eps = float(lr), beta1, beta2, eps
        self.step = 0
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]

    def update(self, params, grads):
        """params[l] -= lr * m_hat / (sqrt(v_hat) + eps), in place."""
        self.step += 1
        c1 = 1.0 - self.beta1 ** self.step
        c2 = 1.0 - self.beta2 ** self.step
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)

    def state_dict(self) -> dict:
        return {"step": self.step, "m": [a.copy() for a in self.m], "v": [a.copy() for a in self.v]}

    def load_state_dict(self, state: dict):
        self.step = int(state["step"])
        self.m = [np.array(a, dtype=np.float64) for a in state["m"]]
        self.v = [np.array(a, dtype=np.float64) for a in state["v"]]
