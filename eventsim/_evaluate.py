"""Classification metrics of a Network on a labelled set of latency-coded inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._losses import softmax_cross_entropy
from ._network import Network
from ._validate import check_int


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one pass over a labelled set.

    accuracy: fraction of samples whose largest v_out (eq. 20) is the label (a
        tie goes to the lowest class index, as in Network.predict);
    cross_entropy: mean of eq. 23 over the samples; spikes_per_neuron: each
    hidden neuron's number of spikes before t_out, averaged over the samples
    (hidden layers concatenated); spikes_per_hidden_neuron: its mean;
    silent_hidden_fraction: fraction of hidden neurons that fire on no sample;
    per_class_accuracy: accuracy on the samples of each label (nan for a label
    with no samples)."""
    accuracy: float
    cross_entropy: float
    spikes_per_neuron: np.ndarray
    per_class_accuracy: np.ndarray
    samples: int

    @property
    def spikes_per_hidden_neuron(self) -> float:
        return float(self.spikes_per_neuron.mean()) if self.spikes_per_neuron.size else 0.0

    @property
    def silent_hidden_fraction(self) -> float:
        return float((self.spikes_per_neuron == 0).mean()) if self.spikes_per_neuron.size \
            else 0.0


class Tally:
    """Running sums of the metrics of Evaluation over batches of forward results
    of a network with layer sizes ``sizes``."""

    def __init__(self, sizes):
        self.correct = np.zeros(sizes[-1], np.int64)
        self.labels_seen = np.zeros(sizes[-1], np.int64)
        self.loss_sum = 0.0
        self.spike_sums = np.zeros(sum(sizes[1:-1]))
        self.samples = 0

    def add(self, res, labels, loss=None):
        """Count one batch: ForwardResult ``res`` of samples with ``labels``;
        ``loss`` is its mean loss (default: the cross-entropy of eq. 23)."""
        n_out = self.correct.shape[0]
        hit = res.v_out.argmax(axis=1) == labels
        self.correct += np.bincount(labels[hit], minlength=n_out)
        self.labels_seen += np.bincount(labels, minlength=n_out)
        if loss is None:
            loss = softmax_cross_entropy(res.v_out, labels)[0]
        self.loss_sum += loss * labels.shape[0]
        if res.spike_counts:
            self.spike_sums += np.concatenate([c.sum(axis=0) for c in res.spike_counts])
        self.samples += labels.shape[0]

    def result(self) -> Evaluation:
        """The metrics of the batches added so far (at least one sample)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = self.correct / self.labels_seen
        return Evaluation(accuracy=float(self.correct.sum() / self.samples),
                          cross_entropy=self.loss_sum / self.samples,
                          spikes_per_neuron=self.spike_sums / self.samples,
                          per_class_accuracy=per_class, samples=self.samples)


def evaluate(net: Network, x, y, batch_size=1000, forward=None) -> Evaluation:
    """Evaluate ``net`` on inputs x (N, n_in), spike times in time units of
    tau, with integer labels y (N,), in batches of ``batch_size`` samples.

    ``forward(start, stop)`` gives the ForwardResult of x[start:stop] (default
    ``net.forward``; the CUDA trainer passes its device-resident forward)."""
    if not isinstance(net, Network):
        raise ValueError(f"net must be an eventsim.Network, got {type(net).__name__}")
    batch_size = check_int(batch_size, "batch_size", 1)
    x = net.check_inputs(x)
    if np.shape(y)[:1] == (0,):
        raise ValueError("need at least one sample to evaluate, got 0")
    y = net.check_labels(y, x.shape[0])
    if forward is None:
        def forward(start, stop):
            return net._forward(x[start:stop])
    tally = Tally(net.sizes)
    for start in range(0, y.shape[0], batch_size):
        stop = min(start + batch_size, y.shape[0])
        tally.add(forward(start, stop), y[start:stop])
    return tally.result()
