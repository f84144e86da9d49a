"""Fig. 2-style picture of LIF neurons driven by one latency-coded MNIST digit.

Panels: (a) the input raster, (b) V (solid) and I (dotted) of the most active
neuron with the threshold and its spikes, (c) V of several neurons, and (d)
the spike counts of the whole layer.

    python examples/plot_traces.py --out traces.png --seed 0 --digit-index 0
    python examples/plot_traces.py --model runs/mnist/model.h5 --out trained.png
    python examples/plot_traces.py --data-dir ~/mnist --out traces.png

Without --model: a random layer, weights following the paper's initialisation,
w ~ Normal(mean 0.03, std sqrt(0.3)), 784 inputs x 40 neurons. If that layer is
nearly silent or fires wildly for the chosen seed/digit/time constants, the
weights are rescaled and the figure title says by how much.

With --model (a network saved by the trainer or ``Network.save``): its last
hidden layer in (b) and (d), simulated exactly as in training (its time
constants, t_out and single-spike mode), and in (c), as in the paper's Fig. 2,
the output neurons, which never fire: their V(t_out) is v_out of eq. 20, and
the largest one is the predicted class.

Times are in the unit of tau_i and tau_v; spikes count over [0, t_out) with
t_out = 1 for a random layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import eventsim  # noqa: E402
from eventsim._cli import add_data_dir_flag  # noqa: E402
from eventsim._io import writable_dir  # noqa: E402
from eventsim.datasets import latency_encode, mnist  # noqa: E402

T_END = 1.0
N_OUT = 40
N_SHOW = 20
W_MEAN, W_STD = 0.03, float(np.sqrt(0.3))
# Acceptable activity: at least MIN_ACTIVE neurons fire, and the mean count of
# the neurons that fire is at most MAX_MEAN_COUNT.
MIN_ACTIVE, MAX_MEAN_COUNT = 4, 15.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("traces.png"), help="PNG to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--tau-i", type=float, default=0.8, help="synaptic time constant")
    p.add_argument("--tau-v", type=float, default=0.4, help="membrane time constant")
    p.add_argument("--digit-index", type=int, default=0, help="index into the MNIST test set")
    p.add_argument("--model", type=Path, default=None,
                   help="a trained network (e.g. runs/mnist/model.h5): plot its last hidden "
                        "layer and its output neurons, simulated as in training, instead of "
                        "a random layer")
    add_data_dir_flag(p)
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed must be an integer >= 0, got {args.seed}")
    return args


def activity_ok(counts) -> int:
    """0 if the layer's activity is reasonable, -1 if too quiet, +1 if too busy."""
    active = counts[counts > 0]
    if active.size < MIN_ACTIVE:
        return -1
    if active.mean() > MAX_MEAN_COUNT:
        return +1
    return 0


def simulate_scaled(times, ids, w0, lif, tries=12):
    """simulate_layer, rescaling the weights (x1.5 or /1.5 per step) until activity is
    sane. Returns (w, spikes, scale) with w = w0 * scale; ValueError if ``tries``
    scales give none."""
    scale, last = 1.0, 0
    for _ in range(tries):
        w = w0 * scale
        try:
            out = eventsim.simulate_layer(times, ids, w, lif, t_end=T_END,
                                          max_spikes_per_neuron=1000)
            verdict = activity_ok(out.counts())
        except eventsim.SpikeLimitError:
            out, verdict = None, +1
        if out is not None and (verdict == 0 or (last and verdict != last)):
            return w, out, scale          # moderate, or oscillating around it
        last = verdict
        scale = scale * 1.5 if verdict < 0 else scale / 1.5
    raise ValueError(f"no weight scale (x1.5 or /1.5 per step, {tries} steps) makes the random "
                     f"layer fire moderately at tau_i = {lif.tau_i:g}, tau_v = {lif.tau_v:g}; "
                     "try other --tau-i/--tau-v or --seed, or --model")


def with_resets(t, v, spikes, threshold):
    """Insert (t_s, threshold) just before each reset point (t_s, 0) so spikes show as peaks."""
    idx = np.searchsorted(t, spikes)  # t contains every spike time; membrane gives V(t_s) = 0
    return np.insert(t, idx, spikes), np.insert(v, idx, threshold)


def align_zeros(ax_left, ax_right):
    """Expand both y-axes minimally so that their zeros sit at the same height."""
    lims = [ax.get_ylim() for ax in (ax_left, ax_right)]
    if any(not lo < 0.0 < hi for lo, hi in lims):
        return
    frac = max(-lo / (hi - lo) for lo, hi in lims)  # common height of zero, in axis fraction
    for ax, (lo, hi) in zip((ax_left, ax_right), lims):
        span = max(hi / (1.0 - frac), -lo / frac)
        ax.set_ylim(-frac * span, (1.0 - frac) * span)


def model_traces(net, times, ids, grid):
    """Exact traces of a trained network for one input: its last hidden layer and its outputs.

    Returns (t_eval, hidden_spikes, V_hidden, I_hidden, V_out): t_eval is
    ``grid`` with the layer's input and spike times added, V_out has
    shape (len(t_eval), n_out), and V_out at t_out is the v_out of eq. 20
    that ``net.forward`` gives.
    """
    x = np.full((1, net.sizes[0]), np.inf)
    x[0, ids] = times
    res = net.forward(x)
    n_hidden = len(net.sizes) - 2
    if n_hidden > 1:
        prev = res.spikes(n_hidden - 2, 0)
        times, ids = prev.times, prev.ids
    hidden = res.spikes(n_hidden - 1, 0)
    t_eval = np.unique(np.concatenate([grid, times, hidden.times]))
    V, I = eventsim.membrane(times, ids, net.weights[-2], net.lif, hidden, t_eval)
    silent = eventsim.Spikes(np.empty(0), np.empty(0, np.int64), net.sizes[-1])
    V_out, _ = eventsim.membrane(hidden.times, hidden.ids, net.weights[-1], net.lif, silent,
                                 t_eval)
    return t_eval, hidden, V, I, V_out


def check_out(path: Path) -> Path:
    """The PNG to write: ``.png`` added to a name without a suffix; its directory
    created and checked for writing now, not after the simulation."""
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name such as "
                         f"{path / 'traces.png'}")
    if not path.suffix:
        path = path.with_suffix(".png")
    writable_dir(path.parent)
    return path


def check_model(net, path, n_pixels):
    """A network that fits this figure: MNIST-sized input and a hidden layer."""
    if net.sizes[0] != n_pixels or len(net.sizes) < 3:
        raise ValueError(f"{path} is a {'-'.join(map(str, net.sizes))} network; the figure "
                         f"needs {n_pixels} inputs (MNIST) and at least one hidden layer")


def main(argv=None):
    args = parse_args(argv)
    args.out = check_out(args.out)
    net = eventsim.Network.load(args.model) if args.model else None
    lif = net.lif if net else eventsim.LIF(tau_i=args.tau_i, tau_v=args.tau_v)
    t_end = net.t_out if net else T_END
    data = mnist(args.data_dir)
    n_test = data.test_images.shape[0]
    if not 0 <= args.digit_index < n_test:
        raise ValueError(f"--digit-index must be in [0, {n_test}), got {args.digit_index}")
    x = data.test_images[args.digit_index]
    label = int(data.test_labels[args.digit_index])
    if net is not None:
        check_model(net, args.model, x.size)

    # One spike per pixel at t = 1 - x, as in training; spikes at or after t_end (the
    # background pixels, at t = 1 = t_end) cannot matter and are dropped.
    t_all = latency_encode(x, t_max=T_END)
    keep = t_all < t_end
    times, ids = t_all[keep], np.flatnonzero(keep)

    grid = np.linspace(0.0, t_end, 1001)
    if net is None:
        rng = np.random.default_rng(args.seed)
        w0 = rng.normal(W_MEAN, W_STD, size=(x.size, N_OUT))
        w, out, scale = simulate_scaled(times, ids, w0, lif)
        t_eval = np.unique(np.concatenate([grid, times, out.times]))
        V, I = eventsim.membrane(times, ids, w, lif, out, t_eval)
        layer = (f"Random LIF layer 784 -> {N_OUT}, w ~ Normal(mean {W_MEAN}, std sqrt(0.3)), "
                 f"seed {args.seed}")
        unit = "neuron"
    else:
        scale = 1.0
        t_eval, out, V, I, V_out = model_traces(net, times, ids, grid)
        mode = "single-spike" if net.single_spike else "multi-spike"
        layer = (f"Trained {mode} network {'-'.join(map(str, net.sizes))} "
                 f"({args.model.name}), last hidden layer")
        unit = "hidden neuron"
    n_layer = out.n_neurons
    counts = out.counts()
    busiest = int(np.argmax(counts))
    thr = lif.threshold

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    (ax_in, ax_one), (ax_many, ax_hist) = axes

    # (a) input raster with the digit as an inset
    ax_in.scatter(times, ids, s=14, color="k", marker="|", lw=1.2)
    ax_in.set(xlim=(-0.02, 1.34 * T_END), ylim=(0, x.size), xlabel="time", ylabel="input id",
              xticks=np.linspace(0.0, T_END, 6),
              title=f"(a) input: test digit #{args.digit_index} (label {label}), "
                    f"{times.size} spikes at t = 1 - x")
    # the digit to the right of t = 1, where no input spikes (inputs lie in [0, t_end))
    inset = ax_in.inset_axes([1.04 * T_END, 0.02 * x.size, 0.28 * T_END, 0.3 * x.size],
                             transform=ax_in.transData)
    inset.imshow(x.reshape(28, 28), cmap="gray_r")
    inset.set_xticks([])
    inset.set_yticks([])

    # (b) one neuron: V solid (left axis), I dotted (right axis), threshold, spikes
    sp = out.of(busiest)
    tv, vv = with_resets(t_eval, V[:, busiest], sp, thr)
    ax_one.plot(tv, vv, "C0-", lw=1.4, label="V")
    ax_one.axhline(thr, color="k", ls="--", lw=1, label="threshold")
    ax_one.plot(sp, np.full(sp.shape, thr), "rv", ms=8, label=f"spikes ({sp.size})")
    ax_one.set(xlim=(0, t_end), xlabel="time", ylabel="membrane potential V")
    ax_i = ax_one.twinx()
    ax_i.plot(t_eval, I[:, busiest], "C1:", lw=1.6, label="I")
    ax_i.set_ylabel("synaptic current I", color="C1")
    ax_i.tick_params(axis="y", colors="C1")
    h1, l1 = ax_one.get_legend_handles_labels()
    h2, l2 = ax_i.get_legend_handles_labels()
    lo, hi = ax_one.get_ylim()
    ax_one.set_ylim(lo, max(hi, 1.3 * thr))  # headroom for the legend above the spikes
    align_zeros(ax_one, ax_i)
    ax_one.legend(h1 + h2, l1 + l2, loc="upper center", ncol=4, fontsize=9)
    ax_one.set_title(f"(b) {unit} {busiest} (the most active)")

    # (c) V of several neurons: the layer's first ones, or a trained network's outputs
    cmap = plt.get_cmap("tab20" if net is None else "tab10")
    if net is None:
        shown = np.arange(min(N_SHOW, n_layer))
        for k, j in enumerate(shown):
            tj, vj = with_resets(t_eval, V[:, j], out.of(j), thr)
            ax_many.plot(tj, vj, lw=0.9, color=cmap(k % 20))
        ax_many.axhline(thr, color="k", ls="--", lw=1)
        title = (f"(c) V of {unit}s 0-{shown[-1]} "
                 f"({int((counts[shown] > 0).sum())} of them fire)")
    else:
        for o in range(V_out.shape[1]):
            ax_many.plot(t_eval, V_out[:, o], lw=2.4 if o == label else 0.9,
                         color=cmap(o % 10), label=str(o))
        ax_many.legend(title="class", fontsize=8, ncol=2, loc="upper left")
        title = (f"(c) outputs' V (never fire): predicted {int(np.argmax(V_out[-1]))}, "
                 f"label {label} (thick)")
    ax_many.set(xlim=(0, t_end), xlabel="time", ylabel="V", title=title)

    # (d) spike counts of the layer
    bins = np.arange(counts.max() + 2) - 0.5
    ax_hist.hist(counts, bins=bins, color="C2", edgecolor="k")
    ax_hist.set(xlabel=f"spikes per {unit} in [0, {t_end:g})", ylabel="number of neurons",
                title=f"(d) spike counts: {len(out)} spikes from {n_layer} {unit}s, "
                      f"{int((counts > 0).sum())} active")
    ax_hist.set_xticks(np.arange(counts.max() + 1))

    scale_note = ("" if scale == 1.0 else
                  f"\nweights rescaled x{scale:.3g} from that initialisation to get "
                  f"moderate activity")
    fig.suptitle(f"{layer}, tau_i = {lif.tau_i:g}, tau_v = {lif.tau_v:g}, "
                 f"threshold = {thr:g}{scale_note}", fontsize=12)
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out.resolve()}")
    return args.out


if __name__ == "__main__":
    try:
        main()
    except (eventsim.DataError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
