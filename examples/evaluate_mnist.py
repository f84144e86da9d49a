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

import eventsim as es
from eventsim._cli import HelpFormatter, add_device_and_data_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("model", help="a file written by the trainer (model.h5, best.h5, "
                                 "checkpoint.h5) or by Network.save")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="MNIST split to score")
    p.add_argument("--batch-size", type=int, default=1000, help="samples per forward pass")
    add_device_and_data_flags(p)
    return p.parse_args(argv)


def evaluate(net, x, y, batch_size):
    """es.evaluate's metrics of ``net`` on (x, y) as a JSON-ready dict, with samples/s."""
    start = time.perf_counter()
    m = es.evaluate(net, x, y, batch_size)
    seconds = time.perf_counter() - start
    return {"accuracy": m.accuracy, "cross_entropy": m.cross_entropy,
            "spikes_per_hidden_neuron": m.spikes_per_hidden_neuron,
            "silent_hidden_fraction": m.silent_hidden_fraction,
            "per_class_accuracy": [round(float(a), 6) for a in m.per_class_accuracy],
            "samples": m.samples, "samples_per_s": m.samples / seconds}


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
