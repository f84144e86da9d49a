"""Engine vs independent references over many random layers.

    python -m validation.compare            # full run (~35 s on 2 cores)
    python -m validation.compare --quick    # CI-sized run (~2 s once numba's cache is warm)

For every p in {2, 1, 0.5, 3.7, 1.0001} and single-/multi-spike mode it draws
random layers (``validation.cases.random_case``: 5-20 neurons, 10-60 input
spikes, 0-10 output spikes per neuron typically) and compares, neuron by
neuron, the spike trains of

* ``eventsim.simulate_layer`` (method="auto") vs the solve_ivp reference
  ``validation.ode.ode_simulate_layer``;
* for p = 2: the engine vs the plain-loop eq. 19 reference
  ``validation.ode.closed_form_layer``, and the engine's method="closed_form"
  vs method="root";
* ``eventsim.simulate_network`` (random recurrent weights of both signs,
  delays 0, 0.01, 0.13) vs ``validation.ode.ode_simulate_network``
  ("w_rec mattered" counts cases whose output differs from simulate_layer,
  "runaway" cases hitting max_spikes_per_neuron=100 are skipped).

A "count mismatch" is a (case, neuron) whose number of spikes differs; max|dt|
is over neurons whose counts agree. Exit status 1 if any expectation fails:
no count mismatches, |dt| <= 1e-12 vs ODE and vs the eq. 19 reference,
<= 1e-12 closed_form vs root.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import eventsim as es

from .cases import TAUS, random_case
from .ode import closed_form_layer, ode_simulate_layer, ode_simulate_network

TOL_ODE = 1e-12
TOL_CF_REF = 1e-12
TOL_CF_ROOT = 1e-12


def _trains(times, ids, n):
    times = np.asarray(times)
    ids = np.asarray(ids)
    return [times[ids == j] for j in range(n)]


def spike_train_diff(a_t, a_j, b_t, b_j, n):
    """(count mismatches, max |dt| over neurons with equal counts)."""
    ta, tb = _trains(a_t, a_j, n), _trains(b_t, b_j, n)
    bad = 0
    worst = 0.0
    for x, y in zip(ta, tb):
        if x.shape != y.shape:
            bad += 1
        elif x.size:
            worst = max(worst, float(np.max(np.abs(x - y))))
    return bad, worst


def random_recurrent(rng, n, tau_i):
    """Sparse-ish random recurrent weights of either sign, strong enough to matter."""
    w = rng.normal(0.0, 1.0, (n, n)) / np.sqrt(n) / tau_i * rng.choice([0.5, 2.0, 4.0])
    w[rng.random((n, n)) < 0.3] = 0.0
    return w


def run_network(n_cases: int, seed: int, verbose: bool = True) -> bool:
    """eventsim.simulate_network vs ode_simulate_network, random recurrent weights."""
    if not hasattr(es, "simulate_network"):
        if verbose:
            print("\n(es.simulate_network missing: network comparison skipped)")
        return True
    ok = True
    rows = []
    for p, (tau_i, tau_v) in TAUS.items():
        lif = es.LIF(tau_i, tau_v)
        rng = np.random.default_rng([seed, int(p * 10000), 7])
        s = dict(cases=0, spikes=0, changed=0, bad=0, dt=0.0, skipped=0)
        for k in range(n_cases):
            c = random_case(rng, tau_i, tau_v, n_out=int(rng.integers(3, 13)))
            w_rec = random_recurrent(rng, c.n_out, tau_i)
            delay = (0.0, 0.01, 0.13)[k % 3]
            single = bool(k % 2)
            try:
                out = es.simulate_network(c.times, c.ids, c.weights, w_rec, lif, c.t_end,
                                          delay=delay, single_spike=single,
                                          max_spikes_per_neuron=100)
            except es.SpikeLimitError:
                s["skipped"] += 1
                continue
            o_t, o_j = ode_simulate_network(c.times, c.ids, c.weights, w_rec, tau_i, tau_v,
                                            c.threshold, c.t_end, delay, single)
            layer = es.simulate_layer(c.times, c.ids, c.weights, lif, c.t_end,
                                      single_spike=single)
            s["cases"] += 1
            s["spikes"] += len(out)
            s["changed"] += int(out != layer)
            bad, dt = spike_train_diff(out.times, out.ids, o_t, o_j, c.n_out)
            s["bad"] += bad
            s["dt"] = max(s["dt"], dt)
        row_ok = s["bad"] == 0 and s["dt"] <= TOL_ODE
        ok &= row_ok
        rows.append((p, s, row_ok))
    if verbose:
        print("\nsimulate_network vs ode_simulate_network (random w_rec, delay 0/0.01/0.13, "
              "single and multi)")
        head = (f"{'p':>7} {'cases':>5} {'spikes':>6} {'w_rec mattered':>14} {'runaway':>7} | "
                f"{'miss':>5} {'max|dt|':>9} | ok")
        print(head)
        print("-" * len(head))
        for p, s, row_ok in rows:
            print(f"{p:>7g} {s['cases']:>5} {s['spikes']:>6} {s['changed']:>14} "
                  f"{s['skipped']:>7} | {s['bad']:>5} {s['dt']:>9.2e} | "
                  f"{'yes' if row_ok else 'NO'}")
    return ok


def run(n_cases: int, seed: int, verbose: bool = True) -> bool:
    rows = []
    ok = True
    t_start = time.perf_counter()
    for p, (tau_i, tau_v) in TAUS.items():
        lif = es.LIF(tau_i, tau_v)
        for single in (False, True):
            rng = np.random.default_rng([seed, int(p * 10000), int(single)])
            stats = dict(cases=0, neurons=0, spikes=0, ode_bad=0, ode_dt=0.0, ref_bad=0,
                         ref_dt=0.0, root_bad=0, root_dt=0.0, max_count=0)
            for _ in range(n_cases):
                c = random_case(rng, tau_i, tau_v)
                out = es.simulate_layer(c.times, c.ids, c.weights, lif, c.t_end,
                                        single_spike=single)
                n = c.n_out
                stats["cases"] += 1
                stats["neurons"] += n
                stats["spikes"] += len(out)
                stats["max_count"] = max(stats["max_count"], int(out.counts().max()))
                o_t, o_j = ode_simulate_layer(c.times, c.ids, c.weights, tau_i, tau_v,
                                              c.threshold, c.t_end, single)
                bad, dt = spike_train_diff(out.times, out.ids, o_t, o_j, n)
                stats["ode_bad"] += bad
                stats["ode_dt"] = max(stats["ode_dt"], dt)
                if p == 2.0:
                    r_t, r_j = closed_form_layer(c.times, c.ids, c.weights, tau_i, tau_v,
                                                 c.threshold, c.t_end, single)
                    bad, dt = spike_train_diff(out.times, out.ids, r_t, r_j, n)
                    stats["ref_bad"] += bad
                    stats["ref_dt"] = max(stats["ref_dt"], dt)
                    cf = es.simulate_layer(c.times, c.ids, c.weights, lif, c.t_end,
                                           single_spike=single, method="closed_form")
                    root = es.simulate_layer(c.times, c.ids, c.weights, lif, c.t_end,
                                             single_spike=single, method="root")
                    bad, dt = spike_train_diff(cf.times, cf.ids, root.times, root.ids, n)
                    stats["root_bad"] += bad
                    stats["root_dt"] = max(stats["root_dt"], dt)
            row_ok = (stats["ode_bad"] == 0 and stats["ode_dt"] <= TOL_ODE
                      and stats["ref_bad"] == 0 and stats["ref_dt"] <= TOL_CF_REF
                      and stats["root_bad"] == 0 and stats["root_dt"] <= TOL_CF_ROOT)
            ok &= row_ok
            rows.append((p, single, stats, row_ok))
    elapsed = time.perf_counter() - t_start
    if verbose:
        head = (f"{'p':>7} {'mode':>6} {'cases':>5} {'neur':>5} {'spikes':>6} {'max/n':>5} | "
                f"{'ODE miss':>8} {'ODE max|dt|':>11} | {'eq19 miss':>9} {'eq19 max|dt|':>12} | "
                f"{'cf/root miss':>12} {'cf/root max|dt|':>15} | ok")
        print(head)
        print("-" * len(head))
        for p, single, s, row_ok in rows:
            p2 = p == 2.0
            print(f"{p:>7g} {'single' if single else 'multi':>6} {s['cases']:>5} "
                  f"{s['neurons']:>5} {s['spikes']:>6} {s['max_count']:>5} | "
                  f"{s['ode_bad']:>8} {s['ode_dt']:>11.2e} | "
                  f"{(s['ref_bad'] if p2 else '-'):>9} "
                  f"{(format(s['ref_dt'], '.2e') if p2 else '-'):>12} | "
                  f"{(s['root_bad'] if p2 else '-'):>12} "
                  f"{(format(s['root_dt'], '.2e') if p2 else '-'):>15} | "
                  f"{'yes' if row_ok else 'NO'}")
        print(f"\nexpected: 0 misses; |dt| <= {TOL_ODE:g} vs ODE, <= {TOL_CF_REF:g} vs eq. 19 "
              f"reference, <= {TOL_CF_ROOT:g} closed_form vs root")
        print(f"{'PASS' if ok else 'FAIL'} ({elapsed:.1f} s)")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run (3 cases per row)")
    ap.add_argument("--cases", type=int, default=None,
                    help="cases per row (default 100, quick 3; network rows use half)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.cases if args.cases is not None else (3 if args.quick else 100)
    ok = run(n, args.seed)
    ok &= run_network(max(3, n // 2), args.seed)
    print(f"\noverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
