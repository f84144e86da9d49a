"""Summarise training runs: test accuracies by setting, mean and standard error over seeds.

    python examples/summarize_runs.py runs/            # every run below runs/
    python examples/summarize_runs.py runs/a runs/b --json

A run is a directory with the trainer's checkpoint.h5 (train_mnist.py --out
DIR, or one run of tau_sweep.py). Runs that differ only in their seed form one
setting (runs tested on fewer than the 10,000 test images, tau_sweep.py
--eval-subset, form their own), labelled by the command-line flags in which it
differs from the paper's protocol. For each setting the table gives the final
test accuracy of every seed and its mean +- standard error (the paper's Table I
convention), the mean of each run's best test epoch (chosen on the test set:
optimistic), and, for runs with --val-size, the test accuracy at the epoch of
highest validation accuracy. Runs that stopped before their last epoch,
further runs of a seed already counted (copies of a run) and unreadable
checkpoints are listed apart and left out of the statistics.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from eventsim._io import load_checkpoint
from eventsim._train import CHECKPOINT, TrainConfig, best_validation, saved_config

# fields that do not change what a run computes, or that name the run (the seed)
_NOT_A_SETTING = ("seed", "device", "eval_batch_size")
_DEFAULTS = asdict(TrainConfig())
MNIST_TRAIN_SAMPLES = 60000   # the runs' training set: train_mnist.py and tau_sweep.py
MNIST_TEST_SAMPLES = 10000    # their test set, unless tau_sweep.py --eval-subset cut it
                              # (checkpoints from before test_samples was stored: taken as all)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", type=Path,
                   help="run directories, or directories searched for them")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p.parse_args(argv)


def find_runs(paths) -> list[Path]:
    runs = set()
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a directory")
        runs.update(c.parent for c in path.rglob(CHECKPOINT))
    if not runs:
        raise FileNotFoundError(f"no {CHECKPOINT} found under {', '.join(map(str, paths))}")
    return sorted(runs)


def run_record(run_dir: Path) -> dict:
    """One run's setting and the accuracies of its epochs (from its checkpoint)."""
    saved = load_checkpoint(run_dir / CHECKPOINT)
    extra = saved.get("extra", {})
    if "config" not in extra or not extra.get("history"):
        raise ValueError(f"{run_dir / CHECKPOINT} holds no training config or history")
    config, history = saved_config(extra["config"]), extra["history"]
    test = [row["test_acc"] for row in history]
    record = {"run": str(run_dir), "config": config, "seed": config.seed,
              "test_samples": extra.get("test_samples", MNIST_TEST_SAMPLES),
              "epochs": len(history), "complete": len(history) >= config.epochs,
              "final": test[-1], "best": max(test), "best_epoch": int(np.argmax(test)) + 1,
              "spikes_per_hidden_neuron": history[-1]["spikes_per_hidden_neuron"],
              "train_time_s": sum(row["epoch_s"] for row in history),
              "test_at_best_val": best_validation(history).get("test_acc")}
    return record


def setting_label(config: TrainConfig) -> str:
    """The flags of train_mnist.py by which ``config`` differs from the paper's protocol."""
    fields = asdict(config)
    flags = []
    for name, value in fields.items():
        default = _DEFAULTS[name]
        if name == "tau_v":
            default = fields["tau_i"] / 2.0
        if name in _NOT_A_SETTING or name == "single_spike" or value == default:
            continue
        if name == "hidden":
            value = ",".join(map(str, value))
        flags.append(f"--{name.replace('_', '-')} {value:g}" if isinstance(value, float)
                     else f"--{name.replace('_', '-')} {value}")
    return " ".join(flags) or "paper protocol"


def mean_and_se(values):
    """(mean, standard error of the mean); the error is None for fewer than two values."""
    if not values:
        return None, None
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return float(np.mean(values)), se


def setting_key(config: TrainConfig) -> tuple:
    """What a run computes, seed aside. When every minibatch is full, lambda and
    sigma enter as the per-sample weights they give (TrainConfig.penalty_weights),
    so "sum" with lambda = 0.01 and "mean" with lambda = 1 at batch 100 are one
    setting; a last, partial batch weights the two differently."""
    fields = asdict(config)
    n_train = config.train_subset or MNIST_TRAIN_SAMPLES - config.val_size
    if n_train % config.batch_size == 0:
        weights = config.penalty_weights(config.batch_size)
        fields.update(dead_penalty=f"{weights[0]:.12g}", output_l2=f"{weights[1]:.12g}",
                      penalty_reduction=None)
    return tuple((k, str(v)) for k, v in fields.items() if k not in _NOT_A_SETTING)


def read_records(run_dirs) -> tuple[list[dict], list[str]]:
    """(run_record of every readable run, one 'RUN: why' line per unreadable one)."""
    records, unreadable = [], []
    for run_dir in run_dirs:
        try:
            records.append(run_record(run_dir))
        except (OSError, ValueError) as err:
            unreadable.append(f"{run_dir}: {err}")
    return records, unreadable


def summarize(records) -> list[dict]:
    """One entry per setting (runs that differ only in their seed), labelled by
    the flags most of its runs were started with. Of several finished runs with
    one seed (copies) only the first, in path order, is counted."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        key = setting_key(record["config"]) + (("test_samples", record["test_samples"]),)
        groups.setdefault(key, []).append(record)
    out = []
    for records in groups.values():
        records.sort(key=lambda r: (r["seed"], r["run"]))
        labels = [setting_label(r["config"]) for r in records]
        config = records[labels.index(max(labels, key=labels.count))]["config"]
        done, duplicates = [], []
        for r in (r for r in records if r["complete"]):
            (duplicates if done and done[-1]["seed"] == r["seed"] else done).append(r)
        at_val = [r["test_at_best_val"] for r in done if r["test_at_best_val"] is not None]
        final_mean, final_se = mean_and_se([r["final"] for r in done])
        n_test = records[0]["test_samples"]
        out.append({
            "setting": setting_label(config) + ("" if n_test == MNIST_TEST_SAMPLES else
                                                f" (tested on {n_test} images)"),
            "test_samples": n_test,
            "mode": "single" if config.single_spike else "multi", "tau_i": config.tau_i,
            "epochs": config.epochs, "runs": len(done),
            "final_mean": final_mean, "final_se": final_se,
            "best_mean": mean_and_se([r["best"] for r in done])[0],
            "test_at_best_val_mean": mean_and_se(at_val)[0],
            "complete": [{k: r[k] for k in ("run", "seed", "final", "best", "best_epoch",
                                             "test_at_best_val", "spikes_per_hidden_neuron",
                                             "train_time_s")} for r in done],
            "incomplete": [{"run": r["run"], "seed": r["seed"], "epochs_done": r["epochs"]}
                           for r in records if not r["complete"]],
            "duplicates": [{"run": r["run"], "seed": r["seed"], "final": r["final"]}
                           for r in duplicates],
        })
    out.sort(key=lambda g: (g["mode"], g["setting"] != "paper protocol", g["tau_i"],
                            g["setting"]))
    return out


def _pct(value, se=None):
    if value is None:
        return ""
    return f"{100 * value:.2f} +- {100 * se:.2f} %" if se is not None else f"{100 * value:.2f} %"


def format_table(groups) -> str:
    lines = ["| setting | spikes | runs | final (mean +- SE) | final / best epoch per seed "
             "| mean best-epoch test acc | mean test at best val |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for g in (g for g in groups if g["runs"]):   # settings with no finished run: below
        per_seed = ", ".join(f"s{r['seed']}: {100 * r['final']:.2f} / {100 * r['best']:.2f}"
                             for r in g["complete"])
        lines.append(f"| {g['setting']} | {g['mode']} | {g['runs']} | "
                     f"{_pct(g['final_mean'], g['final_se'])} | {per_seed} | "
                     f"{_pct(g['best_mean'])} | {_pct(g['test_at_best_val_mean'])} |")
    unfinished = [(g, r) for g in groups for r in g["incomplete"]]
    if unfinished:
        lines.append("")
        lines += [f"unfinished: {r['run']} ({g['setting']}, {g['mode']}, seed {r['seed']}): "
                  f"{r['epochs_done']} of {g['epochs']} epochs" for g, r in unfinished]
    duplicates = [(g, r) for g in groups for r in g["duplicates"]]
    if duplicates:
        lines.append("")
        lines += [f"not counted: {r['run']} ({g['setting']}, {g['mode']}): seed {r['seed']} "
                  f"again ({100 * r['final']:.2f} %)" for g, r in duplicates]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        records, unreadable = read_records(find_runs(args.paths))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in unreadable:
        print(f"skipped {line}", file=sys.stderr)
    if not records:
        print("error: no readable run", file=sys.stderr)
        return 2
    groups = summarize(records)
    print(json.dumps(groups, indent=1) if args.json else format_table(groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
