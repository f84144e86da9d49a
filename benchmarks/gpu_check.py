"""Check and time the CUDA backend against the CPU backend on the paper's 784-400-10 network.

Run on a machine with an NVIDIA GPU (takes well under 5 minutes on an H200 node)::

    python benchmarks/gpu_check.py      # with eventsim installed or on PYTHONPATH
    bash benchmarks/device_check.sh     # the same plus one cuda training epoch, on a
                                        # fresh GPU machine (see that script)

1. Agreement: the same network (``Network([784, 400, 10], LIF(0.8, 0.4), seed=0)``,
   the paper's initialisation) on device="cpu" and device="cuda", on MNIST test
   images (latency-coded; random latency inputs of similar density when MNIST is
   not found): max abs differences of v_out, hidden V(t_out), spike counts,
   the loss, every weight gradient and dL/dx, plus each backend function of the
   first layer on identical inputs. Differences should be rounding-level (the
   GPU's exp/log differ from the CPU's in the last bit; sums run in another
   order); a spike count can flip only where V touches the threshold within
   rounding.
2. Speed: forward and forward+backward (``loss_and_grad``) at batch 100 and
   1000, samples/s on cuda and cpu side by side, and where the cuda time goes.
3. Device-resident training (``eventsim._cuda.ResidentTrainer``, what
   ``Trainer`` runs for device="cuda" with one hidden layer): five Adam steps
   against the cpu path (weights after them), then samples/s of a training
   step and of an evaluation forward pass at each batch size.

Options: ``--batches 100 1000``, ``--sizes 784 400 10``, ``--data mnist|random``,
``--budget SECONDS`` (time spent per timing cell). Exit status 0 if the checks
pass, 1 if a difference exceeds its tolerance, 2 if no GPU is available.
A tiny smoke run works on the CUDA simulator too::

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_check.py --sizes 12 6 3 --batches 2 --data random
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict

import numpy as np

import eventsim as es
from eventsim import _layer
from eventsim._optim import Adam

TOL = 1e-9          # relative tolerance on continuous outputs (rounding-level is ~1e-13)


def load_inputs(n, n_in, n_out, data, seed=0):
    """(x, labels, description): latency-coded MNIST test images, or random latency inputs."""
    if data in ("auto", "mnist") and n_in == 784 and n_out == 10:
        try:
            from eventsim.datasets import latency_encode, mnist
            m = mnist()
            reps = -(-n // m.test_images.shape[0])
            imgs = np.concatenate([m.test_images] * reps)[:n]
            labels = np.concatenate([m.test_labels] * reps)[:n]
            return latency_encode(imgs, 1.0), labels, f"MNIST test images ({m.data_dir})"
        except Exception as exc:  # no data: fall back to random inputs
            if data == "mnist":
                raise
            print(f"  (MNIST not available: {type(exc).__name__}: {exc}; using random inputs)")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, n_in))
    x[rng.random(x.shape) > 0.18] = np.inf       # ~18% of inputs spike, like MNIST ink
    return x, rng.integers(0, n_out, n), "random latency inputs (18% active)"


def maxdiff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    both = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return np.inf
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


def absmax(a):
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(np.abs(a).max()) if a.size else 0.0


def scale_of(a):
    return max(1.0, absmax(a))


class Checks:
    def __init__(self):
        self.failed = []

    def report(self, name, got, want, tol=TOL):
        d = maxdiff(got, want)
        rel = d / scale_of(want)
        ok = rel <= tol
        print(f"  {name:<34s} max|diff| = {d:.3e}   (relative {rel:.1e})  {'ok' if ok else 'FAIL'}")
        if not ok:
            self.failed.append(name)


def check_agreement(cpu, gpu, x, labels, checks):
    a, b, theta = cpu.lif.rate_i, cpu.lif.rate_v, cpu.lif.threshold
    t_out = cpu.t_out
    rc, rg = cpu.forward(x), gpu.forward(x)
    flips = [int((cc != cg).sum()) for cc, cg in zip(rc.spike_counts, rg.spike_counts)]
    total = [int(c.sum()) for c in rc.spike_counts]
    print(f"  hidden spikes (cpu): {total}, (sample, neuron) pairs whose count differs: {flips}")
    same = np.ones(x.shape[0], bool)
    for cc, cg in zip(rc.spike_counts, rg.spike_counts):
        same &= (cc == cg).all(axis=1)
    if not same.all():
        print(f"  {int((~same).sum())} samples have a spike-count flip; the value checks below "
              "use the other samples")
        checks.failed.append("spike-count flips") if (~same).mean() > 0.01 else None
    checks.report("v_out", rg.v_out[same], rc.v_out[same])
    for l, (hc, hg) in enumerate(zip(rc.v_hidden, rg.v_hidden)):
        checks.report(f"v_hidden[{l}] (V at t_out)", hg[same], hc[same])

    xs, ys = x[same], labels[same]
    lc, gc, gxc = cpu.loss_and_grad(xs, ys, wrt_inputs=True)
    lg, gg, gxg = gpu.loss_and_grad(xs, ys, wrt_inputs=True)
    checks.report("loss", lg, lc)
    for l, (g1, g2) in enumerate(zip(gg, gc)):
        checks.report(f"dL/dW[{l}]  (max |grad| {absmax(g2):.2e})", g1, g2)
    checks.report("dL/dx", gxg, gxc)

    # each backend function of the first hidden layer on identical inputs
    if cpu.n_hidden_layers:
        cu = gpu._backend
        times, ids, ptr = _layer.dense_to_lists(xs, t_out)
        w = cpu.weights[0]
        args = (t_out, a, b, theta, cpu.single_spike, cpu._method_code, cpu.max_spikes)
        cap = 16
        while True:
            fc = _layer.layer_forward(times, ids, ptr, _layer.prepare_weights(w), *args, cap)
            if fc[2].max() <= cap:
                break
            cap = int(fc[2].max())
        fg = cu.layer_forward(times, ids, ptr, cu.prepare_weights(w), *args, cap)
        print(f"  layer 0 alone: count differences {int((fg[2] != fc[2]).sum())}")
        if np.array_equal(fg[2], fc[2]):
            for name, g1, g2 in zip(("out_t", "out_dv", "v_end"), fg[:2] + fg[3:],
                                    fc[:2] + fc[3:]):
                checks.report(f"layer_forward {name}", g1, g2)
            rng = np.random.default_rng(1)
            spk_g = np.where(np.isfinite(fc[0]), rng.normal(size=fc[0].shape), 0.0)
            nu = rng.normal(size=fc[3].shape)
            merged = _layer.merge_spikes(fc[0], fc[2])
            bc = _layer.layer_backward(times, ids, ptr, _layer.prepare_weights(w), t_out, a, b,
                                       theta, fc[0], fc[1], fc[2], merged, spk_g, nu, 0.0, True)
            bg = cu.layer_backward(times, ids, ptr, cu.prepare_weights(w), t_out, a, b, theta,
                                   fc[0], fc[1], fc[2], merged, spk_g, nu, 0.0, True)
            checks.report("layer_backward grad_w", bg[0], bc[0])
            checks.report("layer_backward grad_in", bg[1], bc[1])
            mt, mi, mp, _ = merged
            phi = _layer.readout_features(mt, mi, mp, w.shape[1], t_out, a, b)
            checks.report("readout_features", cu.readout_features(mt, mi, mp, w.shape[1],
                                                                   t_out, a, b), phi)


def best_time(fn, budget, max_reps=5):
    """Best wall time of fn() over up to max_reps runs, stopping once budget seconds are spent."""
    best = np.inf
    spent = 0.0
    for _ in range(max_reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        if spent >= budget:
            break
    return best


class Profiled:
    """A backend whose functions accumulate their wall time (to see where cuda time goes)."""

    NAMES = ("prepare_weights", "layer_forward", "layer_backward_merged", "merge_spikes",
             "dense_to_lists", "readout_features", "readout_time_grads")

    def __init__(self, inner):
        self.totals = defaultdict(float)
        for name in self.NAMES:
            setattr(self, name, self._wrap(name, getattr(inner, name)))

    def _wrap(self, name, fn):
        def timed(*args):
            t0 = time.perf_counter()
            out = fn(*args)
            self.totals[name] += time.perf_counter() - t0
            return out
        return timed


def timing(cpu, gpu, x, labels, batches, budget):
    print(f"\n{'batch':>6s} {'pass':<16s} {'cpu samples/s':>14s} {'cuda samples/s':>15s} "
          f"{'speed-up':>9s}")
    for bsz in batches:
        xb, yb = x[:bsz], labels[:bsz]
        for name, fn in (("forward", lambda net: net.forward(xb)),
                         ("forward+backward", lambda net: net.loss_and_grad(xb, yb))):
            tc = best_time(lambda: fn(cpu), budget)
            tg = best_time(lambda: fn(gpu), budget)
            print(f"{bsz:>6d} {name:<16s} {bsz / tc:>14.1f} {bsz / tg:>15.1f} {tc / tg:>8.2f}x"
                  f"   (cpu {tc * 1e3:.1f} ms, cuda {tg * 1e3:.1f} ms)")
    # where the cuda time goes, on the largest batch
    bsz = batches[-1]
    prof = Profiled(gpu._backend)
    inner, gpu._backend = gpu._backend, prof
    try:
        t0 = time.perf_counter()
        gpu.loss_and_grad(x[:bsz], labels[:bsz])
        total = time.perf_counter() - t0
    finally:
        gpu._backend = inner
    print(f"\ncuda loss_and_grad at batch {bsz}: {total * 1e3:.1f} ms, of which "
          "(incl. host<->device copies):")
    for name, t in sorted(prof.totals.items(), key=lambda kv: -kv[1]):
        where = "GPU" if name in ("layer_forward", "layer_backward_merged",
                                  "readout_features") else \
            "host"
        print(f"  {name:<22s} {t * 1e3:9.1f} ms  ({where})")
    print(f"  {'rest (numpy on host)':<22s} {(total - sum(prof.totals.values())) * 1e3:9.1f} ms")


def _resident(sizes, x, n_train):
    """A ResidentTrainer holding x[:n_train] as its training set, and its Adam."""
    from eventsim._cuda import ResidentTrainer
    net = es.Network(sizes, es.LIF(0.8, 0.4), seed=0, device="cuda")
    opt = Adam([w.shape for w in net.weights], lr=1e-3)
    return ResidentTrainer(net, opt, x[:n_train], {"test": x[:min(n_train, 1000)]}), net, opt


def check_resident(sizes, x, labels, batches, budget, checks, n_steps=5):
    """Device-resident training (what Trainer runs for device="cuda"): agreement of
    n_steps Adam steps (batch 100 or less) with the CPU path, then training throughput."""
    bsz = max(1, min(100, x.shape[0] // n_steps))
    n = n_steps * bsz
    resident, net, opt = _resident(sizes, x, n)
    cpu = es.Network(sizes, es.LIF(0.8, 0.4), seed=0, device="cpu")
    cpu_opt = Adam([w.shape for w in cpu.weights], lr=1e-3)
    pen = (0.01 * bsz, 1e-4 * bsz)                    # the trainer's default "sum" reduction
    print(f"\ndevice-resident training (ResidentTrainer), {n // bsz} Adam steps of batch {bsz} "
          "vs the cpu path:")
    total_flips = 0
    for k in range(n // bsz):
        idx = np.arange(k * bsz, (k + 1) * bsz)
        loss_g, res_g = resident.step(idx, labels[idx], *pen, 1e-3)
        res_c = cpu.forward(x[idx])
        loss_c, g_out, g_hidden = cpu.loss(res_c, labels[idx], *pen)
        cpu_opt.update(cpu.weights, cpu.backward(res_c, g_out, g_hidden))
        flips = int((res_g.spike_counts[0] != res_c.spike_counts[0]).sum())
        total_flips += flips
        print(f"  step {k}: loss cuda {loss_g:.12f} cpu {loss_c:.12f}, count flips {flips}")
    resident.pull()
    if total_flips:   # a spike that one device's rounding keeps and the other's loses
        print(f"  weights not compared: {total_flips} spike-count flips make the steps differ "
              "(check_agreement above bounds how often a count flips)")
    else:
        for l, (wg, wc) in enumerate(zip(net.weights, cpu.weights)):
            checks.report(f"weights[{l}] after {n // bsz} steps", wg, wc, 1e-8)

    print(f"\n{'batch':>6s} {'resident cuda':<24s} {'samples/s':>10s} {'ms/step':>8s}")
    for b in batches:
        resident, _, _ = _resident(sizes, x, b)
        idx = np.arange(b)
        for name, fn in (("train step", lambda: resident.step(idx, labels[:b], 0.01 * b,
                                                              1e-4 * b, 1e-3)),
                         ("forward (evaluation)",
                          lambda: resident.evaluate_batch(0, min(b, 1000)))):
            fn()

            def timed():
                fn()
                resident.synchronize()
            t = best_time(timed, budget, max_reps=50)
            print(f"{b:>6d} {name:<24s} {b / t:>10.1f} {t * 1e3:>8.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[784, 400, 10])
    ap.add_argument("--batches", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--data", choices=("auto", "mnist", "random"), default="auto")
    ap.add_argument("--check-batch", type=int, default=100,
                    help="batch size of the agreement check")
    ap.add_argument("--budget", type=float, default=8.0,
                    help="seconds spent per timing cell (at least one run)")
    args = ap.parse_args(argv)

    from numba import config, cuda, get_num_threads, threading_layer
    from numba import __version__ as numba_version
    from eventsim import _cuda
    print(f"python {platform.python_version()}, numba {numba_version}, numpy {np.__version__}, "
          f"CPU threads {get_num_threads()} (of {os.cpu_count()} cores)")
    if not _cuda.is_available():
        print("no CUDA GPU available here (numba.cuda.is_available() is False): nothing to check")
        return 2
    if config.ENABLE_CUDASIM:
        print("running on the CUDA SIMULATOR (NUMBA_ENABLE_CUDASIM=1): timings are meaningless")
    else:
        dev = cuda.get_current_device()
        print(f"GPU: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name}, "
              f"compute capability {dev.compute_capability}")

    sizes = args.sizes
    lif = es.LIF(0.8, 0.4)
    cpu = es.Network(sizes, lif, seed=0, device="cpu")
    gpu = es.Network(sizes, lif, seed=0, device="cuda")
    n = max(max(args.batches), args.check_batch)
    x, labels, what = load_inputs(n, sizes[0], sizes[-1], args.data)
    print(f"network {sizes}, LIF(0.8, 0.4), paper init seed 0; inputs: {what}")
    active = np.isfinite(x) & (x < cpu.t_out)
    print(f"input spikes per sample: {active.sum(axis=1).mean():.1f}")

    t0 = time.perf_counter()
    gpu.loss_and_grad(x[:2], labels[:2])
    cpu.loss_and_grad(x[:2], labels[:2])
    print(f"first call (numba compilation of CUDA kernels and CPU functions): "
          f"{time.perf_counter() - t0:.1f} s; numba threading layer (cpu): {threading_layer()}")

    checks = Checks()
    print(f"\nagreement, cuda vs cpu, batch {args.check_batch}:")
    check_agreement(cpu, gpu, x[:args.check_batch], labels[:args.check_batch], checks)
    timing(cpu, gpu, x, labels, args.batches, args.budget)
    if len(sizes) == 3:
        check_resident(sizes, x, labels, args.batches, args.budget, checks)
    if checks.failed:
        print(f"\nFAILED: {', '.join(checks.failed)}")
        return 1
    print("\nall agreement checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
