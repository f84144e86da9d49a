"""Train the paper's multi-spike SNN on MNIST with exact spike-timing gradients.

Defaults reproduce the paper's protocol (Yamamoto, Sakemi, Aihara, Sec. III):
784-400-10, tau_I = 0.8, tau_V = tau_I / 2, multi-spike, Adam lr 1e-3, batch 100,
100 epochs, lambda = 0.01, sigma = 1e-4, weights ~ N(0.03, 0.3).

    python examples/train_mnist.py                       # full protocol on CPU
    python examples/train_mnist.py --epochs 1 --train-subset 5000
    python examples/train_mnist.py --out runs/mnist --resume   # continue after Ctrl-C

Writes DIR/metrics.csv (one row per epoch), DIR/checkpoint.h5 (after every
epoch, atomically), DIR/model.h5 (final network, ``eventsim.Network.load``) and
DIR/summary.json; the summary is also printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys

import eventsim as es
from eventsim.datasets import latency_encode, mnist
from eventsim._cli import (HelpFormatter, add_training_flags, interrupted_note,
                           sigterm_as_interrupt, training_config)
from eventsim._io import writable_dir
from eventsim._train import CHECKPOINT, FINAL_MODEL, Dataset, Trainer, write_summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    add_training_flags(p)
    p.add_argument("--tau-i", type=float, default=0.8, help="synaptic current time constant tau_I")
    p.add_argument("--tau-v", type=float, default=None, help="default: tau_i / 2")
    p.add_argument("--single-spike", action="store_true", help="TTFS restriction")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and of the shuffling")
    p.add_argument("--out", default="runs/mnist", help="run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue from DIR/checkpoint.h5 (from epoch 1 if there is none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def fresh_start_problem(out_dir, resume: bool):
    """Why a run must not start at epoch 1 in ``out_dir`` (None if it may): it would
    overwrite a checkpoint, or the model and summary of a finished run."""
    if not resume and (out_dir / CHECKPOINT).exists():
        return "already holds a checkpoint; pass --resume to continue it or choose another --out"
    finished = [name for name in (FINAL_MODEL, "summary.json") if (out_dir / name).exists()]
    if finished:
        return (f"holds a finished run ({', '.join(finished)}) without {CHECKPOINT}; choose "
                "another --out, or delete those files to train anew there")
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = training_config(args, tau_i=args.tau_i, tau_v=args.tau_v,
                                 single_spike=args.single_spike, seed=args.seed)
        out_dir = writable_dir(args.out)
        data = mnist(args.data_dir)
        dataset = Dataset(latency_encode(data.train_images), data.train_labels,
                          latency_encode(data.test_images), data.test_labels)
        trainer = Trainer(config, dataset, out_dir, progress=not args.no_progress)
        resumed = args.resume and trainer.resume()
    except (es.DataError, RuntimeError, ValueError) as err:
        # bad flag, missing data, no GPU, a checkpoint with other settings or more epochs
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # while loading the data: nothing to save yet
        print("\ninterrupted before training started; nothing was saved", file=sys.stderr)
        return 130
    problem = None if resumed else fresh_start_problem(trainer.out_dir, args.resume)
    if problem:
        print(f"error: {args.out} {problem}", file=sys.stderr)
        return 2
    if resumed:
        print(f"resumed from {trainer.out_dir / CHECKPOINT} after epoch {trainer.epoch}",
              flush=True)
    elif args.resume:
        print(f"--resume: no checkpoint in {trainer.out_dir}, so training starts at epoch 1",
              flush=True)
    print(f"eventsim {es.__version__}: {'-'.join(map(str, trainer.net.sizes))}, "
          f"tau_i={config.tau_i}, tau_v={config.tau_v}, "
          f"{'single' if config.single_spike else 'multi'}-spike, device={config.device}, "
          f"{trainer.n_train} training samples/epoch, epochs {trainer.epoch + 1}..{config.epochs}",
          flush=True)
    try:
        with sigterm_as_interrupt():
            summary = trainer.fit()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        note = interrupted_note(trainer.out_dir / CHECKPOINT, "continue with --resume")
        print(f"\ninterrupted: {note}", file=sys.stderr)
        return 130
    except (FloatingPointError, es.SpikeLimitError) as err:  # the run diverged
        print(f"error: training diverged in epoch {trainer.epoch + 1} ({err}); train again "
              "with a lower --lr or --init-std into another --out", file=sys.stderr)
        return 2
    write_summary(args.out, summary)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
