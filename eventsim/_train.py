"""Minibatch Adam training of a Network with exact gradients, with resumable checkpoints."""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ._evaluate import Tally, evaluate
from ._io import check_out_dir, load_checkpoint, replacing, save_checkpoint, write_json
from ._lif import LIF
from ._malloc import retain_freed_memory
from ._network import Network
from ._optim import Adam
from ._validate import (check_bool, check_finite, check_input_times, check_int, check_labels,
                        check_layer_sizes, check_nonnegative, check_positive, check_seed,
                        check_time_constant)

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "test_acc", "test_loss", "val_acc",
                 "val_loss", "spikes_per_hidden_neuron", "dead_fraction", "samples_per_s",
                 "epoch_s", "wall_s"]
TIMING_FIELDS = ("samples_per_s", "epoch_s", "wall_s")   # differ between identical runs
CHECKPOINT = "checkpoint.h5"
FINAL_MODEL = "model.h5"
BEST_MODEL = "best.h5"     # the epoch of highest validation accuracy (val_size > 0)

# TrainConfig fields with a fixed set of values (the first is the default)
CHOICES = {"penalty_reduction": ("sum", "mean"), "lr_schedule": ("constant", "cosine"),
           "device": ("cpu", "cuda")}


@dataclass
class TrainConfig:
    """Hyperparameters; the defaults are the paper's MNIST protocol (Sec. III)."""
    hidden: tuple = (400,)
    tau_i: float = 0.8
    tau_v: float | None = None          # None: tau_i / 2 (p = 2)
    single_spike: bool = False
    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    lr_schedule: str = "constant"       # or "cosine": lr(step) of TrainConfig.learning_rate
    weight_decay: float = 0.0           # decoupled (AdamW); not in the paper
    dead_penalty: float = 0.01          # lambda of eq. 24
    output_l2: float = 1e-4             # sigma of eq. 24
    penalty_reduction: str = "sum"      # how the lambda and sigma terms meet the batch
    seed: int = 0
    device: str = "cpu"
    train_subset: int | None = None
    val_size: int = 0                   # last val_size training samples: validation only
    min_slope: float = 0.0
    init_mean: float = 0.03             # initial weights ~ Normal(mean, std**2)
    init_std: float = 0.3 ** 0.5        # the paper's variance 0.3
    t_out: float = 1.0
    eval_batch_size: int = 1000

    def __post_init__(self):
        """Every field checked and stored as the type it names (float, int, bool),
        so that a bad value fails here, naming the field, not in the first step."""
        self.hidden = tuple(check_layer_sizes(self.hidden, "hidden", min_layers=1))
        for name in ("epochs", "batch_size", "eval_batch_size"):
            setattr(self, name, check_int(getattr(self, name), name, 1))
        if self.train_subset is not None:
            self.train_subset = check_int(self.train_subset, "train_subset", 1)
        self.val_size = check_int(self.val_size, "val_size", 0)
        self.seed = check_seed(self.seed)
        self.single_spike = check_bool(self.single_spike, "single_spike")
        self.tau_i = check_time_constant(self.tau_i, "tau_i")
        self.tau_v = check_time_constant(self.tau_i / 2.0 if self.tau_v is None else self.tau_v,
                                         "tau_v")
        for name in ("lr", "t_out"):
            setattr(self, name, check_positive(getattr(self, name), name))
        for name in ("dead_penalty", "output_l2", "min_slope", "weight_decay", "init_std"):
            setattr(self, name, check_nonnegative(getattr(self, name), name))
        self.init_mean = check_finite(self.init_mean, "init_mean")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be {' or '.join(map(repr, allowed))}, "
                                 f"got {getattr(self, name)!r}")

    def penalty_weights(self, batch: int):
        """(lambda, sigma) as weights of the batch-mean terms of ``Network.loss``.

        Eq. 24 leaves open how its terms meet a minibatch. "sum" (default) averages
        the cross-entropy over the batch and sums the dead-neuron and output-L2
        terms over it (e.g. ``sigma * (v_out**2).sum() / N_out`` on the batch
        tensor), i.e. lambda * B and sigma * B per sample; "mean" averages all three.
        """
        scale = batch if self.penalty_reduction == "sum" else 1
        return self.dead_penalty * scale, self.output_l2 * scale

    def learning_rate(self, step: int, total_steps: int) -> float:
        """Adam step size of update ``step`` (0-based) out of ``total_steps``.

        "constant" (the paper): ``lr``. "cosine" (not in the paper): the
        half-cosine decay lr * (1 + cos(pi * step / total_steps)) / 2, from lr at
        the first update to lr * (1 - cos(pi / total_steps)) / 2 at the last.
        """
        if self.lr_schedule == "constant":
            return self.lr
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * step / total_steps))

    def build_network(self, n_in: int, n_out: int) -> Network:
        """The n_in-hidden-n_out Network these settings describe, freshly initialised."""
        return Network([n_in, *self.hidden, n_out], LIF(self.tau_i, self.tau_v),
                       t_out=self.t_out, single_spike=self.single_spike, seed=self.seed,
                       min_slope=self.min_slope, device=self.device,
                       init_mean=self.init_mean, init_std=self.init_std)


@dataclass
class Dataset:
    """Latency-coded spike times (N, n_in) and integer labels (N,)."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 10

    def __post_init__(self):
        """Shapes, spike times and labels checked once here, not deep inside the
        first epoch; x is stored as float64 (not copied if it already is)."""
        self.n_classes = check_int(self.n_classes, "n_classes", 1)
        for part in ("train", "test"):
            x, y = np.asarray(getattr(self, f"x_{part}")), np.asarray(getattr(self, f"y_{part}"))
            if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != np.shape(self.x_train)[1]:
                raise ValueError(f"x_{part} must be a non-empty 2-D array (samples, inputs) "
                                 f"with as many inputs as x_train, got shape {x.shape}")
            setattr(self, f"x_{part}", check_input_times(x, f"x_{part}"))
            check_labels(y, x.shape[0], self.n_classes, f"y_{part}")
            setattr(self, f"y_{part}", y)

    def split_validation(self, val_size: int):
        """(training part, validation part) of the training set: the last
        ``val_size`` samples are held out, whatever the seed."""
        n = self.x_train.shape[0]
        if not 0 <= val_size < n:
            raise ValueError(f"val_size must be in [0, {n}) (the number of training samples), "
                             f"got {val_size}")
        cut = n - val_size
        return ((self.x_train[:cut], self.y_train[:cut]),
                (self.x_train[cut:], self.y_train[cut:]))


def saved_config(saved: dict) -> TrainConfig:
    """The TrainConfig stored in a checkpoint's ``extra["config"]``; options added
    after a checkpoint was written get the values its run trained with."""
    saved = dict(saved)
    saved.setdefault("penalty_reduction", "mean")   # checkpoints from before the options
    saved.setdefault("lr_schedule", "constant")
    saved.setdefault("val_size", 0)
    saved.setdefault("weight_decay", 0.0)
    return TrainConfig(**{k: (tuple(v) if k == "hidden" else v) for k, v in saved.items()})


def best_validation(history) -> dict:
    """The history row of highest validation accuracy (earliest on ties); {} if none."""
    rows = [r for r in history if r.get("val_acc") is not None]
    return max(rows, key=lambda r: r["val_acc"]) if rows else {}


def check_same_settings(saved: dict, config: TrainConfig, path):
    """Raise ValueError unless the config saved in checkpoint ``path`` matches
    ``config`` in everything but device, eval_batch_size and (unless the learning
    rate follows a schedule over all epochs) epochs."""
    mine = asdict(config)
    free = {"device", "eval_batch_size"}
    if config.lr_schedule == "constant":
        free.add("epochs")
    for key, value in asdict(saved_config(saved)).items():
        if key not in free and mine[key] != value:
            raise ValueError(f"{path} was trained with {key}={value!r}, now {key}="
                             f"{mine[key]!r}; use the same settings or another --out")


class Trainer:
    """Runs the training loop; every epoch ends with an atomic HDF5 checkpoint
    (``out_dir/checkpoint.h5``) and a row of ``out_dir/metrics.csv``."""

    def __init__(self, config: TrainConfig, data: Dataset, out_dir, progress=True):
        for name, value, kind in (("config", config, TrainConfig), ("data", data, Dataset)):
            if not isinstance(value, kind):
                raise ValueError(f"{name} must be an eventsim.{kind.__name__}, got "
                                 f"{type(value).__name__}")
        self.config = config
        self.data = data
        self.out_dir = check_out_dir(out_dir)   # created by the first write
        self.progress = progress
        (self.x_train, self.y_train), (self.x_val, self.y_val) = \
            data.split_validation(int(config.val_size))
        n_train = self.x_train.shape[0]
        if config.train_subset is not None:
            if int(config.train_subset) > n_train:
                raise ValueError(f"train_subset must be <= {n_train}, the number of training "
                                 f"samples (after holding out val_size={config.val_size}), "
                                 f"got {config.train_subset}")
            n_train = int(config.train_subset)
        self.n_train = n_train
        self.net = config.build_network(data.x_train.shape[1], data.n_classes)
        self.opt = Adam([w.shape for w in self.net.weights], lr=config.lr,
                        weight_decay=config.weight_decay)
        self.history: list[dict] = []
        self.epoch = 0
        retain_freed_memory()  # no page faults for each batch's buffers
        # device="cuda" with one hidden layer (the paper's network): data, weights
        # and Adam state stay on the GPU during an epoch (train_epoch uploads the
        # host's at its start and copies them back at its end, so net and opt are
        # current whenever no epoch runs); otherwise Network's per-call backend
        self._resident = None
        if config.device == "cuda" and len(config.hidden) == 1:
            from ._cuda import ResidentTrainer
            self._resident = ResidentTrainer(self.net, self.opt, self.x_train,
                                             {"test": data.x_test, "val": self.x_val})

    # ------------------------------------------------------------- checkpoints
    def save(self, path=None):
        """Write weights, Adam state, epoch, settings and history (atomically) to
        ``path`` (default ``out_dir/checkpoint.h5``)."""
        save_checkpoint(path or self.out_dir / CHECKPOINT, self.net, self.opt, self.epoch,
                        self._extra())

    def resume(self) -> bool:
        """Load out_dir/checkpoint.h5 if present; returns whether it did. Raises
        ValueError if it was trained with other settings or for more epochs than
        ``config.epochs``."""
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return False
        data = load_checkpoint(path)
        if "adam" not in data or "config" not in data.get("extra", {}):
            raise ValueError(f"{path} holds a network but not the optimiser state and "
                             "settings of a training checkpoint (is it a copy of model.h5?); "
                             "delete it and train without --resume, or use another --out")
        check_same_settings(data["extra"]["config"], self.config, path)
        if data["epoch"] > self.config.epochs:
            raise ValueError(f"{path} already holds {data['epoch']} epochs, more than "
                             f"--epochs {self.config.epochs}; raise --epochs or use another "
                             "--out")
        self.net.weights = data["weights"]
        self.opt.load_state_dict(data["adam"])
        self.epoch = data["epoch"]
        self.history = data["extra"]["history"]
        if self._resident is not None:
            self._resident.push()
        self._write_metrics()
        return True

    def _write_metrics(self):
        with replacing(self.out_dir / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS, restval="")
            writer.writeheader()
            writer.writerows(self.history)

    # ------------------------------------------------------------------ training
    def train_epoch(self) -> dict:
        """One pass over ``n_train`` training samples, reshuffled with (seed, epoch):
        a step per minibatch. Returns the epoch's training metrics (train_loss,
        train_acc, spikes_per_hidden_neuron, dead_fraction, samples_per_s, epoch_s);
        does not advance ``epoch`` or write anything (``fit`` does).

        With device="cuda" (``_resident``: weights and Adam state on the GPU) the
        epoch starts from ``net.weights`` and ``opt`` as they are on the host and
        copies its result back to them, as on the CPU."""
        cfg = self.config
        net = self.net
        if self._resident is not None:
            self._resident.push()
        perm = np.random.default_rng([cfg.seed, self.epoch]).permutation(
            self.x_train.shape[0])[:self.n_train]
        n_batches = (self.n_train + cfg.batch_size - 1) // cfg.batch_size
        bar = progress_bar(n_batches, f"epoch {self.epoch + 1}/{cfg.epochs}", self.progress)
        tally = Tally(net.sizes)
        start = time.perf_counter()
        for bi in range(n_batches):
            idx = perm[bi * cfg.batch_size:(bi + 1) * cfg.batch_size]
            yb = self.y_train[idx]
            loss, res = self._step(idx, yb, cfg.learning_rate(self.opt.step,
                                                             cfg.epochs * n_batches))
            if not np.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss} at epoch "
                                         f"{self.epoch + 1}, batch {bi}; lower --lr or set "
                                         "--min-slope to clip grazing-spike gradients")
            tally.add(res, yb, loss)
            bar.update(1)
            if bi % 20 == 0:
                bar.set_postfix(loss=f"{tally.loss_sum / tally.samples:.4f}")
        if self._resident is not None:
            self._resident.pull()
        train_s = time.perf_counter() - start
        bar.close()
        metrics = tally.result()
        return {"train_loss": tally.loss_sum / tally.samples, "train_acc": metrics.accuracy,
                "spikes_per_hidden_neuron": metrics.spikes_per_hidden_neuron,
                "dead_fraction": metrics.silent_hidden_fraction,
                "samples_per_s": self.n_train / train_s, "epoch_s": train_s}

    def _step(self, idx, labels, lr):
        """Forward, loss of eq. 24, backward and an Adam step (skipped if the loss
        is not finite) on training samples idx; returns (loss, ForwardResult)."""
        penalties = self.config.penalty_weights(idx.shape[0])
        if self._resident is not None:
            return self._resident.step(idx, labels, *penalties, lr)
        net = self.net
        res = net._forward(self.x_train[idx])   # x checked once, by Dataset
        loss, g_out, g_hidden = net.loss(res, labels, *penalties)
        if np.isfinite(loss):
            self.opt.lr = lr
            self.opt.update(net.weights, net.backward(res, g_out, g_hidden))
        return loss, res

    def _evaluate(self, which, x, y):
        """(accuracy, mean cross-entropy) on the test or validation set."""
        forward = None
        if self._resident is not None:
            def forward(start, stop):
                return self._resident.evaluate_batch(start, stop, which)
        metrics = evaluate(self.net, x, y, self.config.eval_batch_size, forward)
        return metrics.accuracy, metrics.cross_entropy

    def best_validation(self) -> dict:
        """The history row of the epoch with the highest val_acc ({} without val_size)."""
        return best_validation(self.history)

    def _remaining_epochs(self):
        """Train, evaluate, checkpoint and log each epoch up to config.epochs."""
        cfg = self.config
        while self.epoch < cfg.epochs:
            started = time.perf_counter()
            row = self.train_epoch()
            test_acc, test_loss = self._evaluate("test", self.data.x_test, self.data.y_test)
            val = {}
            if cfg.val_size:
                best_before = self.best_validation().get("val_acc", -1.0)
                val_acc, val_loss = self._evaluate("val", self.x_val, self.y_val)
                val = {"val_acc": val_acc, "val_loss": val_loss}
            self.epoch += 1
            row = {"epoch": self.epoch, **row, "test_acc": test_acc, "test_loss": test_loss,
                   **val, "wall_s": time.perf_counter() - started}
            self.history.append(row)
            if val and val["val_acc"] > best_before:
                # before the checkpoint: an epoch redone after a crash rewrites it identically
                self._save_model(BEST_MODEL)
            self.save()
            self._write_metrics()
            val_note = f"  val {100 * val['val_acc']:.2f}%" if val else ""
            print(f"epoch {self.epoch:3d}  loss {row['train_loss']:.4f}  "
                  f"train {100 * row['train_acc']:.2f}%  test {100 * test_acc:.2f}%{val_note}  "
                  f"spikes/neuron {row['spikes_per_hidden_neuron']:.3f}  "
                  f"dead {100 * row['dead_fraction']:.1f}%  "
                  f"{row['samples_per_s']:.0f} samples/s", flush=True)

    def _save_model(self, name):
        save_checkpoint(self.out_dir / name, self.net, epoch=self.epoch, extra=self._extra())

    def _extra(self) -> dict:
        """Settings and history as stored in checkpoints; test_samples says on how
        many test images the history's test_acc was measured."""
        return {"config": asdict(self.config), "history": self.history,
                "test_samples": int(self.data.x_test.shape[0])}

    def fit(self) -> dict:
        """Train from ``epoch`` to ``config.epochs``, evaluating on the test (and
        validation) set, checkpointing and logging after every epoch; saves the
        final network as ``out_dir/model.h5``. Returns the run's summary (final,
        best-epoch and best-validation test accuracies, wall time, settings)."""
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._remaining_epochs()
        except SystemError as err:  # a Ctrl-C inside a numba kernel arrives wrapped
            if _caused_by_interrupt(err):
                raise KeyboardInterrupt from None
            raise
        self._save_model(FINAL_MODEL)
        last = self.history[-1] if self.history else {}
        best = max(self.history, key=lambda r: r["test_acc"]) if self.history else {}
        best_val = self.best_validation()
        return {"test_accuracy": last.get("test_acc"), "epochs": self.epoch,
                "best_test_accuracy": best.get("test_acc"), "best_epoch": best.get("epoch"),
                "val_size": int(cfg.val_size), "best_val_accuracy": best_val.get("val_acc"),
                "best_val_epoch": best_val.get("epoch"),
                "test_accuracy_at_best_val": best_val.get("test_acc"),
                "wall_time_s": wall_time(self.history),
                "train_time_s": sum(r["epoch_s"] for r in self.history),
                "device": cfg.device, "single_spike": cfg.single_spike, "tau_i": cfg.tau_i,
                "tau_v": cfg.tau_v, "hidden": list(cfg.hidden), "seed": cfg.seed,
                "lr_schedule": cfg.lr_schedule, "init_std": cfg.init_std,
                "weight_decay": cfg.weight_decay,
                "train_samples": self.n_train}


def wall_time(history) -> float:
    """Seconds spent on the run's epochs, over every session that resumed it:
    training and evaluation (``wall_s``; rows from before that column count their
    training time ``epoch_s``)."""
    return sum(row.get("wall_s", row["epoch_s"]) for row in history)


def _caused_by_interrupt(err: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in err's chain of causes (numba reports a
    Ctrl-C that lands in compiled code as SystemError ... "with an exception set")."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def progress_bar(total, desc, enabled):
    """A tqdm bar on stderr that is cleared when closed; a silent no-op bar when not
    ``enabled`` (shared by the trainer and ``validation.mp_check``)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, file=sys.stderr,
                dynamic_ncols=True)


def write_summary(out_dir, summary: dict):
    write_json(Path(out_dir) / "summary.json", summary)
