"""Command-line flags shared by the scripts in ``examples/``.

``examples/train_mnist.py`` and ``examples/tau_sweep.py`` train with the same
``TrainConfig`` fields; both declare them here so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from ._io import load_checkpoint
from ._train import CHOICES, TrainConfig

_DEFAULTS = TrainConfig()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` appends each flag's default, except where it is None or False
    (those flags' help texts say what happens when they are left out)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_hidden(text) -> tuple:
    """Command-line hidden sizes: '400' -> (400,), '400,400' -> (400, 400)."""
    try:
        sizes = tuple(int(h) for h in str(text).split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"hidden sizes must be comma-separated positive integers, got {text!r}")
    return sizes


def add_training_flags(p: argparse.ArgumentParser):
    """Flags for the TrainConfig fields that every training script exposes; the
    defaults are the paper's protocol (TrainConfig's defaults)."""
    d = _DEFAULTS
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="samples per Adam step")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--lr-schedule", choices=CHOICES["lr_schedule"], default=d.lr_schedule,
                   help="constant (the paper) or cosine decay to 0 over all epochs")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="decoupled weight decay (AdamW: each step w -= lr * wd * w); "
                        "0 is the paper's plain Adam")
    p.add_argument("--hidden", type=parse_hidden, default=",".join(map(str, d.hidden)),
                   help="hidden sizes, e.g. 400 or 400,400")
    p.add_argument("--dead-penalty", type=float, default=d.dead_penalty,
                   help="lambda of eq. 24")
    p.add_argument("--output-l2", type=float, default=d.output_l2, help="sigma of eq. 24")
    p.add_argument("--penalty-reduction", choices=CHOICES["penalty_reduction"],
                   default=d.penalty_reduction,
                   help="sum the lambda and sigma terms over the batch or average "
                        "them like the cross-entropy")
    p.add_argument("--min-slope", type=float, default=d.min_slope,
                   help="clip dV/dt at crossings from below in the backward pass; 0 is exact")
    p.add_argument("--init-mean", type=float, default=d.init_mean,
                   help="mean of the initial weights")
    p.add_argument("--init-std", type=float, default=d.init_std,
                   help="std of the initial weights; sqrt(0.3) is the paper's variance 0.3")
    p.add_argument("--train-subset", type=int, default=None,
                   help="use the first N shuffled training samples of each epoch (default: all)")
    p.add_argument("--val-size", type=int, default=d.val_size,
                   help="hold out the last N training images for validation: val_acc per "
                        "epoch, DIR/best.h5 at the best one; 0 trains on all")
    add_device_and_data_flags(p)


def add_device_and_data_flags(p: argparse.ArgumentParser):
    """--device and --data-dir, shared by the training and evaluation scripts."""
    p.add_argument("--device", choices=CHOICES["device"], default=_DEFAULTS.device,
                   help="cpu: parallel numba kernels; cuda: numba.cuda kernels on an NVIDIA GPU")
    add_data_dir_flag(p)


def add_data_dir_flag(p: argparse.ArgumentParser):
    """--data-dir, shared by every script that reads MNIST."""
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $EVENTSIM_DATA, "
                   "then the repository's data/mnist)")


def training_config(args, **fields) -> TrainConfig:
    """TrainConfig from the flags of ``add_training_flags`` plus ``fields``."""
    return TrainConfig(hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, lr_schedule=args.lr_schedule, weight_decay=args.weight_decay,
                       dead_penalty=args.dead_penalty, output_l2=args.output_l2,
                       penalty_reduction=args.penalty_reduction, min_slope=args.min_slope,
                       init_mean=args.init_mean, init_std=args.init_std, device=args.device,
                       train_subset=args.train_subset, val_size=args.val_size, **fields)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM (``kill``, a batch scheduler's time limit) stops a
    run the way Ctrl-C does: as a KeyboardInterrupt, so that a checkpoint being
    written is discarded, the last complete one is kept and the script says how
    to resume. The previous handler is restored on exit. Signal handlers can
    only be set from the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_note(checkpoint, resume_hint: str) -> str:
    """What a training script prints when Ctrl-C or SIGTERM stops it: which epoch
    ``checkpoint`` holds, or, when no epoch has finished yet, that nothing was
    saved (a checkpoint is written at the end of each epoch)."""
    try:
        epoch = load_checkpoint(checkpoint).get("epoch")
    except (OSError, ValueError):
        epoch = None
    if epoch:
        return f"the last complete epoch ({epoch}) is saved in {checkpoint}; {resume_hint}"
    return ("no epoch had finished, so nothing was saved (a checkpoint is written at the "
            "end of every epoch); rerun the command to start again")
