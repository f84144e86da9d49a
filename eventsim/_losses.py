"""The paper's training losses (eqs. 21-24) and their gradients w.r.t. membrane values."""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(v_out: np.ndarray, labels: np.ndarray):
    """Mean over the batch of -log softmax(v_out)[label] (eq. 23) and its gradient
    softmax(v_out) - onehot(label), divided by the batch size.

    Written for full relative precision when a sample is classified confidently:
    with m the largest entry of a row and r the sum of exp(v_k - m) over its other
    entries, log sum_k exp(v_k) = m + log1p(r), and where the label holds the
    maximum its gradient entry is -r / (1 + r). The textbook exp(log_prob) - 1
    cancels to an absolute error of ~1e-16 there, and to 0 once the margin
    exceeds ~37, while the other entries are still nonzero.
    """
    n = v_out.shape[0]
    rows = np.arange(n)
    top = v_out.argmax(axis=1)
    shifted = v_out - v_out[rows, top][:, None]
    others = np.exp(shifted)
    others[rows, top] = 0.0
    rest = others.sum(axis=1)
    loss = float((np.log1p(rest) - shifted[rows, labels]).mean())
    norm = 1.0 + rest
    grad = others / norm[:, None]
    grad[rows, top] = 1.0 / norm
    grad[rows, labels] -= 1.0
    label_on_top = rows[labels == top]
    grad[label_on_top, top[label_on_top]] = -rest[label_on_top] / norm[label_on_top]
    return loss, grad / n


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
