"""Adam optimiser (Kingma & Ba) over a list of NumPy arrays, with optional
decoupled weight decay (AdamW, Loshchilov & Hutter)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._validate import check_nonnegative, check_positive


@njit(cache=True, error_model="numpy")
def adam_update(i, p, g, m, v, lr, beta1, beta2, eps, c1, c2, weight_decay):
    """Adam on element i of flat arrays (same operation order as NumPy's
    p -= lr wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g g;
    p -= lr (m/c1) / (sqrt(v/c2) + eps)), with c1 = 1 - b1^step, c2 = 1 - b2^step
    and wd the decoupled weight decay (PyTorch's AdamW; wd = 0 leaves p's bits
    as plain Adam's). Also the CUDA backend's Adam."""
    p[i] -= lr * weight_decay * p[i]
    m[i] = m[i] * beta1 + (1.0 - beta1) * g[i]
    v[i] = v[i] * beta2 + (1.0 - beta2) * g[i] * g[i]
    p[i] -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)


@njit(cache=True, parallel=True, error_model="numpy")
def _adam_step(p, g, m, v, lr, beta1, beta2, eps, c1, c2, weight_decay):
    """One fused pass of Adam over flat arrays."""
    for i in prange(p.shape[0]):
        adam_update(i, p, g, m, v, lr, beta1, beta2, eps, c1, c2, weight_decay)


class Adam:
    """Adam with bias correction, updating a list of float64 arrays in place.

    ``weight_decay`` > 0 shrinks every parameter by ``lr * weight_decay`` of
    itself before each Adam step (decoupled weight decay, as PyTorch's AdamW;
    not in the paper, whose Adam has none). State (``step``, first and second
    moments) is plain arrays so it can be checkpointed and restored exactly.
    """

    def __init__(self, shapes, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.lr, self.beta1, self.beta2, self.eps = check_positive(lr, "lr"), beta1, beta2, eps
        self.weight_decay = check_nonnegative(weight_decay, "weight_decay")
        self.step = 0
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]

    def next_step(self):
        """Count one update; returns its bias corrections (c1, c2)."""
        self.step += 1
        return 1.0 - self.beta1 ** self.step, 1.0 - self.beta2 ** self.step

    def update(self, params, grads):
        """params[l] -= lr * (weight_decay * params[l] + m_hat / (sqrt(v_hat) + eps)),
        in place."""
        c1, c2 = self.next_step()
        for p, g, m, v in zip(params, grads, self.m, self.v):
            if not (p.flags.c_contiguous and p.dtype == np.float64):
                raise ValueError("Adam updates float64 C-contiguous parameter arrays in place")
            _adam_step(p.reshape(-1), np.ascontiguousarray(g, np.float64).reshape(-1),
                       m.reshape(-1), v.reshape(-1), self.lr, self.beta1, self.beta2, self.eps,
                       c1, c2, self.weight_decay)

    def state_dict(self) -> dict:
        return {"step": self.step, "m": [a.copy() for a in self.m], "v": [a.copy() for a in self.v]}

    def load_state_dict(self, state: dict):
        self.step = int(state["step"])
        self.m = [np.array(a, dtype=np.float64) for a in state["m"]]
        self.v = [np.array(a, dtype=np.float64) for a in state["v"]]
