"""Throughput of the exact event-driven engine (forward simulation only, CPU).

(a) The paper's hidden layer: 784 latency inputs from MNIST test images
    (``latency_encode``; about 150 per sample fall before t_end = 1), 400 LIF(0.8, 0.4)
    neurons, weights ~ Normal(0.03, variance 0.3) (seed 0, as Network's first layer).
    A batch goes through the batch kernel (``eventsim._simulate.run_layer`` on the
    lists of ``eventsim._layer.dense_to_lists``, i.e. ``_layer.layer_forward``),
    and the same samples through ``es.simulate_layer`` one call per sample.
    Events counted: synaptic events = input spikes x neurons (every input spike
    updates all 400 neurons) + output spikes.
(b) A recurrent network (``es.simulate_network``): 10,000 neurons, recurrent
    weights scipy.sparse.random at 1% density (about 100 targets per neuron),
    Normal(-0.01, 0.2); 200 Poisson inputs (rate 20 per unit time each) with
    input weights at 10% density, Normal(0.035, 0.0175): a few spikes per neuron.
    Delays 0 and 1e-3. Events counted: input deliveries (input spikes x their
    fan-out) + recurrent deliveries (spikes that arrive before t_end x their
    fan-out) + spikes; each delivery advances one neuron and re-predicts its next
    crossing (a heap update).

Timings: warm-up first (numba compile / cache load), then ``--repeats`` runs,
interleaved between contenders; best and median are printed, rates use the best.

    python benchmarks/bench_engine.py [--batch 100] [--repeats 3] [--neurons 10000]
"""

from __future__ import annotations

import argparse
import math
import sys

import numba
import numpy as np
from _timing import interleaved
import scipy.sparse as sp

import eventsim as es
from eventsim import _layer
from eventsim._simulate import DEFAULT_MAX_SPIKES, run_layer
from eventsim._validate import check_method

LIF = es.LIF(0.8, 0.4)
T_END = 1.0


def row(name, best, med, *cols):
    return f"{name:34s} {best:8.4f} {med:8.4f} " + " ".join(cols)


# ----------------------------------------------------------------------------- (a)
def bench_layer(batch, repeats):
    data = es.mnist()
    x = es.latency_encode(data.test_images[:batch], T_END)
    w = np.random.default_rng(0).normal(0.03, math.sqrt(0.3), (784, 400))
    method = check_method("auto", LIF)
    times, ids, ptr = _layer.dense_to_lists(x, T_END)
    n_in_spk = times.shape[0]

    def batch_kernel():
        return run_layer(times, ids, ptr, w, LIF, T_END, False, method, DEFAULT_MAX_SPIKES,
                         cap=32)[2]

    def per_sample():
        return np.stack([es.simulate_layer(times[ptr[s]:ptr[s + 1]], ids[ptr[s]:ptr[s + 1]], w,
                                           LIF, T_END).counts() for s in range(batch)])

    counts = batch_kernel()                     # warm-up (compile / cache load)
    per_sample()
    t = interleaved({"batch kernel (run_layer)": batch_kernel,
                     "simulate_layer, 1 sample/call": per_sample}, repeats)
    same = np.array_equal(t["batch kernel (run_layer)"][2], t["simulate_layer, 1 sample/call"][2])
    n_out_spk = int(counts.sum())
    events = n_in_spk * w.shape[1] + n_out_spk
    print(f"(a) layer 784 -> 400, LIF(0.8, 0.4), batch {batch} MNIST test images: "
          f"{n_in_spk / batch:.1f} input spikes/sample, {n_out_spk / batch:.1f} output spikes/"
          f"sample ({n_out_spk / counts.size:.2f}/neuron, max {counts.max()}); "
          f"events = input spikes x 400 neurons + output spikes = {events / batch:.0f}/sample; "
          f"spike counts of both paths identical: {same}")
    print(f"{'':34s} {'best s':>8s} {'median s':>8s} {'samples/s':>10s} {'Mevents/s':>10s} "
          f"{'out spikes/s':>13s}")
    for name, (best, med, _) in t.items():
        print(row(name, best, med, f"{batch / best:10.0f}", f"{events / best / 1e6:10.1f}",
                  f"{n_out_spk / best:13.3g}"))
    ratio = t["simulate_layer, 1 sample/call"][0] / t["batch kernel (run_layer)"][0]
    print(f"ratio time(simulate_layer per sample) / time(batch kernel) = {ratio:.1f}\n")
    return same


# ----------------------------------------------------------------------------- (b)
def make_network(n, n_in, seed=0, rate=20.0, in_density=0.1, in_mean=0.035, rec_density=0.01,
                 rec_mean=-0.01, rec_sd=0.2):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate * T_END, n_in)
    ids = np.repeat(np.arange(n_in), counts)
    times = rng.uniform(0.0, T_END, ids.size)
    w_in = sp.random(n_in, n, density=in_density, format="csr", random_state=seed + 1,
                     data_rvs=lambda k: rng.normal(in_mean, 0.5 * in_mean, k))
    w_rec = sp.random(n, n, density=rec_density, format="csr", random_state=seed + 2,
                      data_rvs=lambda k: rng.normal(rec_mean, rec_sd, k))
    return times, ids, w_in, w_rec


def bench_network(n, n_in, repeats):
    # warm-up on a small network (compile / cache load)
    es.simulate_network(*make_network(200, 20), LIF, T_END, delay=0.0)
    es.simulate_network(*make_network(200, 20), LIF, T_END, delay=1e-3)
    times, ids, w_in, w_rec = make_network(n, n_in)
    fan_in = np.diff(w_in.indptr)
    fan_rec = np.diff(w_rec.indptr)
    in_deliv = int(fan_in[ids].sum())
    delays = (0.0, 1e-3)
    t = interleaved({f"simulate_network delay {d:g}": (
        lambda d=d: es.simulate_network(times, ids, w_in, w_rec, LIF, T_END, delay=d))
        for d in delays}, repeats)
    print(f"(b) recurrent network: {n} neurons, w_rec {w_rec.nnz} synapses "
          f"({w_rec.nnz / n:.0f} per neuron), {n_in} Poisson inputs -> {times.size} input "
          f"spikes, w_in {w_in.nnz} synapses, {in_deliv} input deliveries, t_end {T_END}")
    print(f"{'':34s} {'best s':>8s} {'median s':>8s} {'spikes':>8s} {'spk/neuron':>10s} "
          f"{'max':>4s} {'active':>7s} {'rec deliv':>10s} {'Mevents/s':>10s} {'spikes/s':>10s}")
    for d, (name, (best, med, out)) in zip(delays, t.items()):
        c = out.counts()
        arrived = out.times + d < T_END if d > 0 else np.ones(len(out), bool)
        rec_deliv = int(fan_rec[out.ids[arrived]].sum())
        events = in_deliv + rec_deliv + len(out)
        print(row(name, best, med, f"{len(out):8d}", f"{c.mean():10.2f}", f"{c.max():4d}",
                  f"{(c > 0).mean():7.1%}", f"{rec_deliv:10d}", f"{events / best / 1e6:10.2f}",
                  f"{len(out) / best:10.3g}"))
    print("events = input deliveries + recurrent deliveries + spikes")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=100, help="samples in (a)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--neurons", type=int, default=10_000, help="network size in (b)")
    ap.add_argument("--inputs", type=int, default=200, help="Poisson inputs in (b)")
    args = ap.parse_args(argv)
    if min(args.batch, args.repeats, args.neurons, args.inputs) < 1:
        ap.error("--batch, --repeats, --neurons and --inputs must be >= 1")
    print(f"eventsim {es.__version__}, numba {numba.__version__}, {numba.get_num_threads()} "
          f"threads ({numba.config.THREADING_LAYER}); simulate_network is single-threaded\n")
    ok = bench_layer(args.batch, args.repeats)
    bench_network(args.neurons, args.inputs, args.repeats)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
