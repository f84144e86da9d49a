"""Evaluate a saved network on the MNIST test set (or the training set).

    python examples/evaluate_mnist.py runs/mnist/model.h5
    python examples/evaluate_mnist.py runs/mnist/best.h5 --device cuda

Prints one JSON line: accuracy, mean cross-entropy (eq. 23), mean spikes per
hidden neuron and sample, the fraction of hidden neurons that never fire on the
whole set, the accuracy of each class, and samples/s. The inputs are latency
coded as in training (t = 1 - x).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import eventsim as es
from eventsim._losses import softmax_cross_entropy


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a file written by the trainer (model.h5, best.h5, "
                                 "checkpoint.h5) or by Network.save")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $EVENTSIM_DATA, "
                   "then the repository's data/mnist)")
    return p.parse_args(argv)


def evaluate(net, x, y, batch_size):
    """Metrics of ``net`` on latency-coded inputs x (N, n_in) with labels y (N,)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    n_out = net.sizes[-1]
    correct = np.zeros(n_out, np.int64)
    loss_sum = spikes = 0.0
    fired = [np.zeros(n, bool) for n in net.sizes[1:-1]]
    start = time.perf_counter()
    for i in range(0, x.shape[0], batch_size):
        res = net.forward(x[i:i + batch_size])
        yb = y[i:i + batch_size]
        hit = res.v_out.argmax(axis=1) == yb
        correct += np.bincount(yb[hit], minlength=n_out)
        loss_sum += softmax_cross_entropy(res.v_out, yb)[0] * yb.shape[0]
        for f, counts in zip(fired, res.spike_counts):
            f |= (counts > 0).any(axis=0)
            spikes += float(counts.sum())
    seconds = time.perf_counter() - start
    n_hidden = sum(net.sizes[1:-1])
    per_class = correct / np.maximum(np.bincount(y, minlength=n_out), 1)
    return {"accuracy": float(correct.sum() / y.shape[0]),
            "cross_entropy": loss_sum / y.shape[0],
            "spikes_per_hidden_neuron": spikes / (y.shape[0] * max(n_hidden, 1)),
            "silent_hidden_fraction": 1.0 - sum(int(f.sum()) for f in fired) / max(n_hidden, 1),
            "per_class_accuracy": [round(float(a), 6) for a in per_class],
            "samples": int(y.shape[0]), "samples_per_s": y.shape[0] / seconds}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        net = es.Network.load(args.model, device=args.device)
        data = es.mnist(args.data_dir)
        images, labels = ((data.test_images, data.test_labels) if args.split == "test"
                          else (data.train_images, data.train_labels))
        if net.sizes[0] != images.shape[1] or net.sizes[-1] != 10:
            raise ValueError(f"{args.model} is a {'-'.join(map(str, net.sizes))} network; "
                             f"MNIST needs {images.shape[1]} inputs and 10 outputs")
        metrics = evaluate(net, es.latency_encode(images), labels, args.batch_size)
    except (es.DataError, FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"model": str(args.model), "split": args.split, "device": args.device,
                      **metrics}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
