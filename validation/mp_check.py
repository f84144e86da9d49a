"""Engine and gradients vs the 40-digit mpmath references of ``validation.mp_reference``.

    python -m validation.mp_check            # full run (10-22 min on one core)
    python -m validation.mp_check --quick    # CI-sized run (~30 s)

Four checks, each against 40-digit arithmetic on the same float64 inputs:

* spike times of ``eventsim.simulate_layer`` on random layers
  (``validation.cases.random_case``), p in {2, 1, 0.5, 3.7, 1.0001, 20},
  multi- and single-spike: no count mismatch, |dt| <= 1e-14;
* extreme regimes (``check_extreme_layers``): stiff leak ratios (p = 100 and
  0.01), p = 1 - 2e-7 and 1 + 2e-12, time constants of 1e-3 and 100, drives
  of up to 60 times threshold (up to thousands of spikes per neuron) and
  horizons from 0.02 to 500 times the faster time constant: no count
  mismatch, |dt| <= 1e-14 t_end;
* grazing crossings: one input whose kernel peak is 1 + eps times threshold,
  eps from 1e-3 down to 1e-12 (and -1e-12: no spike). The crossing time's
  condition number grows like 1/sqrt(eps), so the allowed error is
  1e-14 / sqrt(eps), the effect of a few ulps of V there;
* ``Network.loss_and_grad`` (cross-entropy, dead-neuron penalty with fixed
  flags, output L2) for 5-7-3 and (not with --quick) 4-6-5-3 networks,
  p in {2, 1, 0.5, 3}, and 5-7-3 networks at p = 1 + 2e-12, 1 - 2e-7, 100
  and 0.01 (``check_extreme_gradients``; --quick: the first two), multi- and
  single-spike, against 40-digit central differences of the loss,
  w.r.t. weights and input spike times (``wrt_inputs=True``):
  |g - g_ref| <= 1e-12 max|g|, and the loss itself to 1e-13 relative.

Exit status 1 if any expectation fails.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time

import numpy as np

import eventsim as es
from eventsim._train import progress_bar

from . import mp_reference as ref
from .cases import TAUS, random_case
from .compare import spike_train_diff

TOL_TIME = 1e-14
TOL_GRAZE = 1e-14
TOL_GRAD = 1e-12
TOL_LOSS = 1e-13
LAYER_TAUS = {**TAUS, 20.0: (2.0, 0.1)}
#: (tau_i, tau_v, t_end) of check_extreme_layers: p = 100 and 0.01, p = 1 - 2e-7 and
#: 1 + 2e-12, fast and slow time scales, horizons of 0.02-500 of the faster time constant
EXTREME_TAUS = [(1.0, 0.01, 5.0), (0.01, 1.0, 5.0), (0.5, 0.5 + 1e-7, 5.0),
                (0.5 + 1e-12, 0.5, 1.0), (0.003, 0.0015, 0.05), (100.0, 50.0, 1.0),
                (5.0, 0.05, 25.0)]
NET_TAUS = {2.0: (0.8, 0.4), 1.0: (0.5, 0.5), 0.5: (0.3, 0.6), 3.0: (0.9, 0.3)}
#: (tau_i, tau_v) of check_extreme_gradients: p = 1 + 2e-12, 1 - 2e-7, 100 and 0.01
EXTREME_NET_TAUS = [(0.5 + 1e-12, 0.5), (0.5 - 1e-7, 0.5), (1.0, 0.01), (0.01, 1.0)]


def check_layers(n_cases: int, seed: int, progress: bool = False):
    """(count mismatches, max |dt|, spikes compared) over random layers."""
    rng = np.random.default_rng(seed)
    mismatches, worst, n_spikes = 0, 0.0, 0
    bar = progress_bar(len(LAYER_TAUS) * n_cases, "random layers", progress)
    for tau_i, tau_v in LAYER_TAUS.values():
        lif = es.LIF(tau_i, tau_v)
        for _ in range(n_cases):
            case = random_case(rng, tau_i, tau_v, n_out=3)
            for single in (False, True):
                out = es.simulate_layer(case.times, case.ids, case.weights, lif,
                                        t_end=case.t_end, single_spike=single)
                bad, dt, counts = _compare_with_reference(case, out, single)
                mismatches += bad
                worst = max(worst, dt)
                n_spikes += sum(counts)
            bar.update()
    bar.close()
    return mismatches, worst, n_spikes


def _compare_with_reference(case, out, single):
    """(count mismatches, max |dt|, reference spike count per neuron) of the engine's
    output ``out`` for ``case`` against the 40-digit reference."""
    trains = [ref.neuron(case.times, case.weights[case.ids, j], case.tau_i, case.tau_v,
                         t_end=case.t_end, single_spike=single)[0]
              for j in range(case.n_out)]
    bad, dt = spike_train_diff(out.times, out.ids, *_flatten(trains), case.n_out)
    return bad, dt, [len(train) for train in trains]


def check_extreme_layers(n_cases: int, seed: int, max_drive: float = 60.0,
                         progress: bool = False):
    """(count mismatches, max |dt| / t_end, spikes compared, most spikes of one neuron)
    over random two-neuron layers in the regimes of EXTREME_TAUS, drives up to
    ``max_drive`` times threshold, multi- and single-spike. Layers whose neurons
    exceed the engine's spike cap (a clear SpikeLimitError) are redrawn."""
    rng = np.random.default_rng(seed)
    mismatches, worst, n_spikes, most = 0, 0.0, 0, 0
    bar = progress_bar(len(EXTREME_TAUS) * n_cases, "extreme regimes", progress)
    for tau_i, tau_v, t_end in EXTREME_TAUS:
        lif = es.LIF(tau_i, tau_v)
        done = 0
        while done < n_cases:
            case = random_case(rng, tau_i, tau_v, n_out=2, t_end=t_end,
                               max_drive=float(rng.uniform(2.0, max_drive)))
            try:
                outs = [es.simulate_layer(case.times, case.ids, case.weights, lif,
                                          t_end=t_end, single_spike=single)
                        for single in (False, True)]
            except es.SpikeLimitError:
                continue
            done += 1
            for single, out in zip((False, True), outs):
                bad, dt, counts = _compare_with_reference(case, out, single)
                mismatches += bad
                worst = max(worst, dt / t_end)
                n_spikes += sum(counts)
                most = max([most] + counts)
            bar.update()
    bar.close()
    return mismatches, worst, n_spikes, most


def _flatten(trains):
    """Per-neuron mpmath spike trains -> float64 (times, ids)."""
    times = [float(t) for train in trains for t in train]
    ids = [j for j, train in enumerate(trains) for _ in train]
    return np.array(times, dtype=np.float64), np.array(ids, dtype=np.int64)


def check_grazing():
    """[(p, eps, engine spike count, reference count, |dt|, allowed |dt|)]."""
    rows = []
    for p, (tau_i, tau_v) in TAUS.items():
        lif = es.LIF(tau_i, tau_v)
        for eps in (1e-3, 1e-6, 1e-9, 1e-12, -1e-12):
            weight = float((1 + eps) / ref.kappa_peak(tau_i, tau_v))
            out = es.simulate_layer([0.1], [0], [[weight]], lif, t_end=5.0)
            expected, _ = ref.neuron([0.1], [weight], tau_i, tau_v, t_end=5.0)
            _, dt = spike_train_diff(out.times, out.ids, *_flatten([expected]), 1)
            rows.append((p, eps, out.times.size, len(expected), dt,
                         TOL_GRAZE / math.sqrt(abs(eps))))
    return rows


def random_network(rng, sizes, tau_i, tau_v, single):
    """A network whose hidden neurons fire about 0-4 times; inputs in [0, 0.9)."""
    net = es.Network(sizes, es.LIF(tau_i, tau_v), single_spike=single,
                     seed=int(rng.integers(2**31)))
    net.weights = [rng.normal(2.0, 2.0, w.shape) for w in net.weights[:-1]] + \
                  [rng.normal(0.0, 2.0, net.weights[-1].shape)]
    return net


def pick_entries(rng, grads, n_per_layer):
    """(layer, i, j) of n_per_layer random entries and n_per_layer nonzero ones per layer."""
    entries = []
    for layer, g in enumerate(grads):
        nonzero = np.argwhere(g != 0.0)
        entries += [(layer, int(rng.integers(g.shape[0])), int(rng.integers(g.shape[1])))
                    for _ in range(n_per_layer)]
        if nonzero.size:
            entries += [(layer, *map(int, nonzero[k]))
                        for k in rng.integers(nonzero.shape[0], size=n_per_layer)]
    return entries


def network_errors(rng, sizes, tau_i, tau_v, single, n_entries, weight_scale=1.0):
    """(loss rel. error, max |g - g_ref| / max|g| for the weights and for the input
    times, spikes per hidden neuron) of one random network (``random_network``,
    weights times ``weight_scale``) against the 40-digit reference."""
    net = random_network(rng, sizes, tau_i, tau_v, single)
    net.weights = [w * weight_scale for w in net.weights]
    x = rng.uniform(0.0, 0.9, (2, sizes[0]))
    labels = rng.integers(0, sizes[-1], 2)
    flags = [rng.random(n) < 0.5 for n in sizes[1:-1]]
    kw = dict(dead_penalty=0.3, output_l2=1e-2)
    loss, grads, grad_x = net.loss_and_grad(x, labels, dead_flags=flags, wrt_inputs=True, **kw)
    counts = np.mean([c.mean() for c in net.forward(x).spike_counts])
    entries = pick_entries(rng, grads, n_entries)
    x_entries = [(int(rng.integers(x.shape[0])), int(rng.integers(x.shape[1])))
                 for _ in range(2 * n_entries)]
    ref_kw = dict(tau_i=tau_i, tau_v=tau_v, single_spike=single, dead_flags=flags, **kw)
    ref_loss = float(ref.loss(x, labels, net.weights, **ref_kw))
    ref_grads = ref.loss_gradient(x, labels, net.weights, entries, **ref_kw)
    ref_grad_x = ref.input_gradient(x, labels, net.weights, x_entries, **ref_kw)
    scale = max(float(np.abs(g).max()) for g in grads)
    err = max(abs(grads[l][i, j] - float(g)) for (l, i, j), g in zip(entries, ref_grads))
    err_x = max(abs(grad_x[b, i] - float(g)) for (b, i), g in zip(x_entries, ref_grad_x))
    return (abs(loss - ref_loss) / abs(ref_loss), err / scale,
            err_x / float(np.abs(grad_x).max()), counts)


def check_gradients(n_entries: int, seed: int, deep: bool = True):
    """Yields (sizes, p, single, loss rel. error, max |g - g_ref| / max|g| for the weights and
    for the input times, spikes per hidden neuron), one network at a time."""
    rng = np.random.default_rng(seed)
    for sizes in ([5, 7, 3], [4, 6, 5, 3]) if deep else ([5, 7, 3],):
        for p, (tau_i, tau_v) in NET_TAUS.items():
            for single in (False, True):
                yield (sizes, p, single,
                       *network_errors(rng, sizes, tau_i, tau_v, single, n_entries))


def check_extreme_gradients(n_entries: int, seed: int, taus=None):
    """As ``check_gradients`` for 5-7-3 networks at the (tau_i, tau_v) of
    EXTREME_NET_TAUS (or ``taus``), weights scaled by kappa's peak at (0.8, 0.4)
    over its peak at (tau_i, tau_v) so that the neurons fire about as often."""
    rng = np.random.default_rng(seed)
    peak_paper = float(ref.kappa_peak(0.8, 0.4))
    for tau_i, tau_v in EXTREME_NET_TAUS if taus is None else taus:
        scale = peak_paper / float(ref.kappa_peak(tau_i, tau_v))
        for single in (False, True):
            yield ([5, 7, 3], tau_i / tau_v, single,
                   *network_errors(rng, [5, 7, 3], tau_i, tau_v, single, n_entries, scale))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_cases, n_entries = (1, 1) if args.quick else (15, 4)
    n_extreme, max_drive = (1, 5.0) if args.quick else (6, 60.0)
    start = time.perf_counter()
    ok = True

    mismatches, worst, n_spikes = check_layers(n_cases, args.seed, progress=True)
    row_ok = mismatches == 0 and worst <= TOL_TIME
    ok &= row_ok
    print(f"random layers vs 40-digit reference: {n_spikes} spikes, {mismatches} count "
          f"mismatches, max|dt| {worst:.1e}  {'ok' if row_ok else 'FAIL'}", flush=True)

    mismatches, worst, n_spikes, most = check_extreme_layers(n_extreme, args.seed, max_drive,
                                                             progress=True)
    row_ok = mismatches == 0 and worst <= TOL_TIME
    ok &= row_ok
    print(f"extreme regimes vs 40-digit reference: {n_spikes} spikes (up to {most} per "
          f"neuron), {mismatches} count mismatches, max|dt|/t_end {worst:.1e}  "
          f"{'ok' if row_ok else 'FAIL'}", flush=True)

    print("grazing crossings (peak = (1 + eps) threshold):")
    for p, eps, n_got, n_ref, dt, allowed in check_grazing():
        row_ok = n_got == n_ref and dt <= allowed
        ok &= row_ok
        print(f"  p={p:<7g} eps={eps:<7.0e} spikes {n_got}/{n_ref}  |dt| {dt:.1e} "
              f"(allowed {allowed:.0e})  {'ok' if row_ok else 'FAIL'}")

    print("loss and gradient vs 40-digit central differences:")
    print("  (errors: loss relative; gradients as max|g - g_ref| / max|g|, w.r.t. weights and "
          "input times)")
    extreme = check_extreme_gradients(n_entries, args.seed,
                                      EXTREME_NET_TAUS[:2] if args.quick else None)
    rows = itertools.chain(check_gradients(n_entries, args.seed, deep=not args.quick), extreme)
    for sizes, p, single, loss_err, grad_err, grad_x_err, counts in rows:
        row_ok = loss_err <= TOL_LOSS and max(grad_err, grad_x_err) <= TOL_GRAD
        ok &= row_ok
        print(f"  {'-'.join(map(str, sizes)):<9} {f'p={p:.13g}':<16} "
              f"{'single' if single else 'multi':<6} {counts:5.2f} spikes/neuron  "
              f"loss {loss_err:.1e}  dL/dw {grad_err:.1e}  dL/dx {grad_x_err:.1e}  "
              f"{'ok' if row_ok else 'FAIL'}", flush=True)

    print(f"{'PASS' if ok else 'FAIL'} ({time.perf_counter() - start:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
