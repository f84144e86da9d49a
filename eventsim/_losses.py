"""The paper's training losses (eqs. 21-24) and their gradients w.r.t. membrane values."""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(v_out: np.ndarray, labels: np.ndarray):
    """Mean over the batch of -log softmax(v_out)[label] (eq. 23) and its gradient."""
    shifted = v_out - v_out.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_prob = shifted - log_norm
    n = v_out.shape[0]
    loss = -log_prob[np.arange(n), labels].mean()
    grad = np.exp(log_prob)
    grad[np.arange(n), labels] -= 1.0
    return float(loss), grad / n


def dead_neuron_flags(spike_counts: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Eq. 21 with the paper's rule: flag neurons that fire for fewer than
    ``fraction`` of the samples in the batch. spike_counts: (B, J)."""
    active = (spike_counts > 0).sum(axis=0)
    return active < fraction * spike_counts.shape[0]


def dead_neuron_penalty(v_hidden: np.ndarray, flags: np.ndarray, threshold: float):
    """Mean over the batch of L_c = (1/J) P^T (theta - v_hidden) (eq. 22) and its gradient."""
    n, n_hidden = v_hidden.shape
    p = flags.astype(np.float64)
    loss = float((p * (threshold - v_hidden)).sum() / (n_hidden * n))
    grad = np.broadcast_to(-p / (n_hidden * n), v_hidden.shape).copy()
    return loss, grad


def output_l2(v_out: np.ndarray):
    """Mean over the batch of (1/N_out) ||v_out||^2 (the sigma term of eq. 24) and its gradient."""
    return float(np.mean(v_out ** 2)), 2.0 * v_out / v_out.size
