"""Sweep the leakage time constant tau_I and regenerate Figs. 3-5 of the paper.

Yamamoto, Sakemi, Aihara, Sec. III: 784-400-10 networks are trained on MNIST for
each tau_I (tau_V = tau_I / 2), with and without the single-spike restriction,
and after training the test set is run through each network to count the
spikes of every hidden neuron. The paper plots

* Fig. 3: the distribution over hidden neurons of the number of spikes per
  neuron (mean over test samples), multi-spike, for three time constants (the
  caption says tau_V = 0.2, 0.4, 6.4, the text tau_I = 0.2; the sweep variable
  here is tau_I, select the panels with --fig3-taus);
* Fig. 4: the mean number of spikes per hidden neuron vs tau_I, multi- vs
  single-spike, with a dashed line at 1 (the single-spike ceiling);
* Fig. 5: test accuracy vs tau_I, multi- vs single-spike, mean +- standard
  error over seeds (the paper uses 10 seeds, 100 epochs).

    python examples/tau_sweep.py --out runs/tau_sweep                 # paper protocol
    python examples/tau_sweep.py --epochs 1 --train-subset 2000 --eval-subset 1000 \\
        --hidden 100 --taus 0.2 0.8 3.2 --out /tmp/sweep                 # quick look
    python examples/tau_sweep.py --out runs/tau_sweep --plot-only     # replot

Each run lives in DIR/<mode>_tau<tau_I>_seed<seed>/ with the files of
examples/train_mnist.py (metrics.csv, checkpoint.h5, model.h5, summary.json),
train.log (the per-epoch lines, also printed unless --quiet), spike_counts.npy
(float array, one entry per hidden neuron: its spike count averaged over the
evaluated test samples) and eval.json. Rerunning the same command resumes an
interrupted sweep: finished runs (summary.json) are skipped, a run with a
checkpoint continues from it, and raising --epochs continues finished runs up to
the new count. Every completed
run found in DIR goes into DIR/sweep.csv and the three figures
DIR/fig3_spike_histograms.png, DIR/fig4_spikes_vs_tau.png and
DIR/fig5_accuracy_vs_tau.png, whose titles state the epochs and sample counts
used. A run that diverges is marked FAILED and the sweep goes on with the next.
Sweeps of different runs may share DIR side by side (e.g. one per core
with NUMBA_NUM_THREADS=1 and other --taus or --seeds); never two on one run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from eventsim._cli import (HelpFormatter, add_training_flags, interrupted_note,
                           sigterm_as_interrupt, training_config)
from eventsim._io import check_out_dir, replacing, writable_dir, write_json

PAPER_TAUS = (0.2, 0.4, 0.8, 1.6, 3.2, 6.4)
PAPER_FIG3_TAUS = (0.2, 0.4, 6.4)
PAPER = {"epochs": 100, "train_samples": 60000, "eval_samples": 10000, "hidden": "400",
         "seeds": 10}
MODES = ("multi", "single")
CSV_FIELDS = ["mode", "tau_i", "tau_v", "seed", "test_acc", "mean_spikes_per_neuron",
              "epochs", "train_samples", "eval_samples", "hidden", "silent_fraction"]
FIGURES = ("fig3_spike_histograms.png", "fig4_spikes_vs_tau.png", "fig5_accuracy_vs_tau.png")
COLORS = {"multi": "tab:blue", "single": "tab:orange"}
LABELS = {"multi": "multi-spike", "single": "single-spike"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--taus", type=float, nargs="+", default=list(PAPER_TAUS),
                   help="tau_I values")
    p.add_argument("--p", type=float, default=2.0,
                   help="leaky factor p = tau_I / tau_V (2: tau_V = tau_I / 2)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                   help="multi-spike and/or single-spike (TTFS) networks")
    p.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0],
                   help="initial-weight seeds, one run each (the paper uses 10)")
    add_training_flags(p)
    p.add_argument("--eval-subset", type=int, default=None,
                   help="evaluate on the first N test samples (default: all 10000)")
    p.add_argument("--fig3-taus", type=float, nargs="+", default=list(PAPER_FIG3_TAUS),
                   help="tau_I values of the Fig. 3 panels (if some were not run: the "
                        "smallest, a middle and the largest tau_I run)")
    p.add_argument("--out", default="runs/tau_sweep", help="sweep directory")
    p.add_argument("--plot-only", action="store_true",
                   help="train nothing: rebuild sweep.csv and the figures from DIR")
    p.add_argument("--quiet", action="store_true",
                   help="print one line per run, not the per-epoch lines (those are always "
                        "written to <run>/train.log too)")
    p.add_argument("--progress", action="store_true", help="tqdm bar per epoch")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("train_subset", "eval_subset"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not all(0 < t < math.inf for t in [*args.taus, args.p]):
        p.error("--taus and --p must be positive finite numbers")
    if min(args.seeds) < 0:
        p.error("--seeds must be integers >= 0")
    args.taus = sorted(set(args.taus))
    args.seeds = sorted(set(args.seeds))
    return args


def run_name(mode: str, tau_i: float, seed: int) -> str:
    return f"{mode}_tau{tau_i:g}_seed{seed}"


# ---------------------------------------------------------------------------- training
class _Tee:
    """File-like that writes to several streams (the run's log, optionally stdout)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


_DATA = {}   # (data_dir, eval_subset) -> Dataset, for repeated main() calls in one process


def _load_data(args):
    from eventsim._train import Dataset
    from eventsim.datasets import latency_encode, mnist

    key = (args.data_dir, args.eval_subset)
    if key not in _DATA:
        data = mnist(args.data_dir)
        n_eval = data.test_images.shape[0] if args.eval_subset is None else \
            min(args.eval_subset, data.test_images.shape[0])
        _DATA.clear()
        _DATA[key] = Dataset(latency_encode(data.train_images), data.train_labels,
                             latency_encode(data.test_images[:n_eval]),
                             data.test_labels[:n_eval])
    return _DATA[key]


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _evaluate_run(run_dir, net, dataset, eval_batch):
    from eventsim import evaluate

    metrics = evaluate(net, dataset.x_test, dataset.y_test, eval_batch)
    acc, counts = metrics.accuracy, metrics.spikes_per_neuron
    with replacing(run_dir / "spike_counts.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, counts)   # a file object: np.save would append .npy to a name
    info = {"test_acc": acc, "eval_samples": int(dataset.x_test.shape[0]),
            "mean_spikes_per_neuron": float(counts.mean()),
            "silent_fraction": float((counts == 0).mean())}
    write_json(run_dir / "eval.json", info)
    return info


def train_one(args, mode, tau_i, seed, dataset):
    """Train (or resume, or skip) one run and evaluate it; returns (status, info)."""
    from eventsim import Network
    from eventsim._train import Trainer, write_summary

    config = training_config(args, tau_i=tau_i, tau_v=tau_i / args.p,
                             single_spike=(mode == "single"), seed=seed)
    run_dir = Path(args.out) / run_name(mode, tau_i, seed)
    n_eval = int(dataset.x_test.shape[0])
    summary = _read_json(run_dir / "summary.json")
    if summary is not None and summary.get("epochs") == config.epochs:
        _check_finished(run_dir, config)
        info = _read_json(run_dir / "eval.json")
        if info is not None and info.get("eval_samples") == n_eval \
                and (run_dir / "spike_counts.npy").is_file():
            return "skipped (done)", info
        net = Network.load(run_dir / "model.h5", device=config.device)
        return "re-evaluated", _evaluate_run(run_dir, net, dataset, config.eval_batch_size)

    trainer = Trainer(config, dataset, run_dir, progress=args.progress)
    resumed = trainer.resume()   # ValueError: other settings or more epochs in the checkpoint
    start_epoch = trainer.epoch
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "train.log", "a") as log:
        out = log if args.quiet else _Tee(log, sys.stdout)
        with contextlib.redirect_stdout(out):
            summary = trainer.fit()
    write_summary(run_dir, summary)
    info = _evaluate_run(run_dir, trainer.net, dataset, config.eval_batch_size)
    if start_epoch == config.epochs:
        status = f"finished from its checkpoint ({config.epochs} epochs)"
    else:
        status = (f"resumed after epoch {start_epoch}, " if resumed else "") + \
            f"trained epoch{'s' if config.epochs - start_epoch > 1 else ''} " + \
            (f"{start_epoch + 1}..{config.epochs}" if config.epochs - start_epoch > 1
             else f"{config.epochs}")
    return status, info


def _check_finished(run_dir, config):
    """A finished run must match the requested settings (other than epochs/device)."""
    from eventsim._io import load_checkpoint
    from eventsim._train import check_same_settings

    path = run_dir / "model.h5"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has summary.json but no model.h5; delete the "
                                "directory to retrain it")
    check_same_settings(load_checkpoint(path)["extra"]["config"], config, path)


# ----------------------------------------------------------------------------- results
def collect(out_dir):
    """One row per completed run in out_dir (summary.json + eval.json + spike_counts.npy);
    returns (rows, {run_dir_name: spike_counts})."""
    rows, counts = [], {}
    for run_dir in sorted(Path(out_dir).glob("*_tau*_seed*")):
        summary = _read_json(run_dir / "summary.json")
        info = _read_json(run_dir / "eval.json")
        if summary is None or info is None or not (run_dir / "spike_counts.npy").is_file():
            continue
        rows.append({"mode": "single" if summary["single_spike"] else "multi",
                     "tau_i": float(summary["tau_i"]), "tau_v": float(summary["tau_v"]),
                     "seed": int(summary["seed"]), "test_acc": float(info["test_acc"]),
                     "mean_spikes_per_neuron": float(info["mean_spikes_per_neuron"]),
                     "epochs": int(summary["epochs"]),
                     "train_samples": int(summary["train_samples"]),
                     "eval_samples": int(info["eval_samples"]),
                     "hidden": ",".join(str(h) for h in summary["hidden"]),
                     "silent_fraction": float(info["silent_fraction"]),
                     "_dir": run_dir.name})
        counts[run_dir.name] = np.load(run_dir / "spike_counts.npy")
    rows.sort(key=lambda r: (MODES.index(r["mode"]), r["tau_i"], r["seed"]))
    return rows, counts


def write_csv(out_dir, rows):
    path = Path(out_dir) / "sweep.csv"
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _values(rows, key):
    return sorted({r[key] for r in rows})


def protocol_line(rows):
    """What the runs were trained with, for the figure titles; flags a quick sweep."""
    def show(key, fmt=str):
        vals = _values(rows, key)
        return "/".join(fmt(v) for v in vals)

    seeds_per = {}
    for r in rows:
        seeds_per.setdefault((r["mode"], r["tau_i"]), set()).add(r["seed"])
    n_seeds = sorted({len(s) for s in seeds_per.values()})
    seeds = _n_text(n_seeds)
    epochs = show("epochs")
    line = (f"784-{show('hidden').replace(',', '-')}-10, {epochs} epoch"
            f"{'' if epochs == '1' else 's'}, {show('train_samples')} train samples/epoch, "
            f"{show('eval_samples')} test samples,\n{seeds} seed{'' if seeds == '1' else 's'}"
            " per point")
    paper = (_values(rows, "epochs") == [PAPER["epochs"]]
             and _values(rows, "train_samples") == [PAPER["train_samples"]]
             and _values(rows, "eval_samples") == [PAPER["eval_samples"]]
             and _values(rows, "hidden") == [PAPER["hidden"]])
    if not paper:
        line += "\nQUICK SWEEP, not the paper's protocol (100 epochs, 60000 samples, 400 hidden)"
    elif n_seeds != [PAPER["seeds"]]:
        line += f" (paper: {PAPER['seeds']} seeds)"
    return line


def _stats(rows, mode, key, scale=1.0):
    """tau_i values, means, standard errors (nan for one seed) and seed counts."""
    taus = sorted({r["tau_i"] for r in rows if r["mode"] == mode})
    mean, se, n = [], [], []
    for t in taus:
        v = np.array([r[key] for r in rows if r["mode"] == mode and r["tau_i"] == t]) * scale
        mean.append(v.mean())
        se.append(v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else np.nan)
        n.append(v.size)
    return np.array(taus), np.array(mean), np.array(se), n


def _tau_axis(ax, taus):
    ax.set_xscale("log", base=2)
    ax.set_xticks(taus)
    ax.set_xticklabels([f"{t:g}" for t in taus])
    ax.minorticks_off()
    ax.set_xlabel(r"$\tau_I$  ($\tau_V = \tau_I/p$)")
    ax.grid(alpha=0.3)


def pick_fig3_taus(available, wanted):
    available = sorted(available)
    chosen = [t for t in available if any(math.isclose(t, w) for w in wanted)]
    if len(chosen) == len(set(wanted)) or len(available) <= 1:
        return chosen or available
    if len(available) <= 3:
        return available
    return [available[0], available[len(available) // 2], available[-1]]


def _savefig(fig, path):
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def plot(out_dir, rows, counts, fig3_taus=PAPER_FIG3_TAUS):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    proto = protocol_line(rows)
    paths = [out_dir / name for name in FIGURES]
    all_taus = _values(rows, "tau_i")
    p_vals = sorted({round(r["tau_i"] / r["tau_v"], 6) for r in rows})
    p_text = "/".join(f"{p:g}" for p in p_vals)

    # Fig. 3: distribution over hidden neurons of the mean spike count, multi-spike
    multi = [r for r in rows if r["mode"] == "multi"]
    taus3 = pick_fig3_taus({r["tau_i"] for r in multi}, fig3_taus)
    ncol = max(len(taus3), 1)
    fig, axes = plt.subplots(1, ncol, figsize=(4.2 * ncol, 3.8), squeeze=False)
    for ax, tau in zip(axes[0], taus3):
        runs = [r for r in multi if r["tau_i"] == tau]
        values = [counts[r["_dir"]] for r in runs]
        top = max(float(max(v.max() for v in values)), 1e-9)
        edges = np.linspace(0.0, top * 1.0001, 31)
        # fraction of neurons per bin, averaged over the seeds (as the paper averages
        # the histograms of its ten networks)
        frac = np.mean([np.histogram(v, edges)[0] / v.size for v in values], axis=0)
        ax.bar(edges[:-1], frac, width=np.diff(edges), align="edge", color=COLORS["multi"],
               edgecolor="white", linewidth=0.4)
        m = float(np.mean([v.mean() for v in values]))
        ax.axvline(m, color="k", ls="--", lw=1, label=f"mean {m:.3g}")
        silent = float(np.mean([(v == 0).mean() for v in values]))
        ax.set_title(rf"$\tau_I$ = {tau:g}, $\tau_V$ = {runs[0]['tau_v']:g}"
                     f"\n{len(runs)} net{'s' if len(runs) > 1 else ''}, "
                     f"{100 * silent:.0f}% silent neurons", fontsize=10)
        ax.set_xlabel("spikes per hidden neuron (mean over test samples)")
        ax.legend(fontsize=9, frameon=False)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of hidden neurons")
    if not taus3:
        axes[0][0].text(0.5, 0.5, "no multi-spike runs", ha="center", va="center",
                        transform=axes[0][0].transAxes)
    fig.suptitle("Fig. 3: distribution of spikes per hidden neuron (multi-spike)\n" +
                 (protocol_line(multi) if multi else proto),
                 fontsize=10)
    fig.tight_layout()
    _savefig(fig, paths[0])
    plt.close(fig)

    # Fig. 4: mean spikes per hidden neuron vs tau_I
    fig, ax = plt.subplots(figsize=(7.8, 4.8))
    for mode in MODES:
        taus, mean, se, n = _stats(rows, mode, "mean_spikes_per_neuron")
        if taus.size:
            ax.errorbar(taus, mean, yerr=np.nan_to_num(se), marker="o", capsize=3,
                        color=COLORS[mode], label=f"{LABELS[mode]} (n={_n_text(n)})")
    ax.axhline(1.0, color="k", ls="--", lw=1, label="1 (single-spike ceiling)")
    _tau_axis(ax, all_taus)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("mean spikes per hidden neuron per sample")
    ax.legend(fontsize=9)
    ax.set_title("Fig. 4: spikes per hidden neuron vs " + r"$\tau_I$" + f" (p = {p_text})\n"
                 + proto, fontsize=10)
    fig.tight_layout()
    _savefig(fig, paths[1])
    plt.close(fig)

    # Fig. 5: test accuracy vs tau_I, mean +- standard error over seeds
    fig, ax = plt.subplots(figsize=(7.8, 4.8))
    for mode in MODES:
        taus, mean, se, n = _stats(rows, mode, "test_acc", scale=100.0)
        if taus.size:
            ax.errorbar(taus, mean, yerr=np.nan_to_num(se), marker="o", capsize=3,
                        color=COLORS[mode], label=f"{LABELS[mode]} (n={_n_text(n)})")
    _tau_axis(ax, all_taus)
    ax.set_ylabel("test accuracy (%), mean ± s.e. over seeds")
    ax.legend(fontsize=9)
    ax.set_title("Fig. 5: test accuracy vs " + r"$\tau_I$" + f" (p = {p_text})\n" + proto,
                 fontsize=10)
    fig.tight_layout()
    _savefig(fig, paths[2])
    plt.close(fig)
    return paths


def _n_text(n):
    lo, hi = min(n), max(n)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def finish(args):
    rows, counts = collect(args.out)
    if not rows:
        print(f"error: no completed runs in {args.out}", file=sys.stderr)
        return None
    csv_path = write_csv(args.out, rows)
    paths = plot(args.out, rows, counts, args.fig3_taus)
    print(f"{len(rows)} runs -> {csv_path}", flush=True)
    for p in paths:
        print(f"wrote {p}", flush=True)
    return rows


# --------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    try:   # the raw --out: Path("") would be ".", the current directory
        out = check_out_dir(args.out) if args.plot_only else writable_dir(args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.plot_only:
        return 0 if finish(args) else 1
    import eventsim as es
    from eventsim._train import CHECKPOINT

    jobs = [(mode, tau, seed) for mode in args.modes for tau in args.taus for seed in args.seeds]
    t0 = time.perf_counter()
    try:
        dataset = _load_data(args)
    except es.DataError as err:   # missing or damaged MNIST files
        print(f"error: {err}", file=sys.stderr)
        return 2
    epochs = f"{args.epochs} epoch{'s' * (args.epochs > 1)}"
    print(f"eventsim {es.__version__}: tau sweep of {len(jobs)} runs into {out} "
          f"(784-{'-'.join(map(str, args.hidden))}-10, {epochs}, "
          f"{args.train_subset or dataset.x_train.shape[0]} train samples/epoch, "
          f"{dataset.x_test.shape[0]} test samples; data ready in "
          f"{time.perf_counter() - t0:.1f} s)", flush=True)
    failed = []
    for k, (mode, tau, seed) in enumerate(jobs, 1):
        head = (f"[{k}/{len(jobs)}] {mode:6s} tau_i={tau:<5g} tau_v={tau / args.p:<6g} "
                f"seed={seed}:")
        start = time.perf_counter()
        try:
            with sigterm_as_interrupt():
                status, info = train_one(args, mode, tau, seed, dataset)
        except (FloatingPointError, es.SpikeLimitError) as exc:
            # a diverged run (loss not finite, runaway firing) must not stop the sweep
            print(f"{head} FAILED: {exc}", flush=True)
            failed.append(run_name(mode, tau, seed))
            continue
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            # settings clash with DIR, damaged files, device="cuda" without a GPU
            print(f"{head} error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM
            note = interrupted_note(out / run_name(mode, tau, seed) / CHECKPOINT,
                                    "rerun the same command to resume the sweep")
            print(f"\n{head} interrupted: {note}", file=sys.stderr)
            return 130
        print(f"{head} {status}; test acc {100 * info['test_acc']:.2f}%, "
              f"spikes/neuron {info['mean_spikes_per_neuron']:.3f}, "
              f"silent {100 * info['silent_fraction']:.0f}% "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    rows = finish(args)
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (see their train.log; "
              "try a lower --lr or --init-std, or --min-slope)", file=sys.stderr)
    return 0 if rows and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
