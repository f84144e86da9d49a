"""Engine vs independent references over many random layers.

    python -m validation.compare            # full run (~1-2 min on 2 cores)
    python -m validation.compare --quick    # CI-sized run (a few seconds after numba's cache is warm)

For every p in {2, 1, 0.5, 3.7, 1.0001} and single-/multi-spike mode it draws
random layers (``validation.cases.random_case``: 5-20 neurons, 10-60 input
spikes, 0-10 output spikes per neuron typically) and compares, neuron by
neuron, the spike trains of

* ``eventsim.simulate_layer`` (method="auto") vs the solve_ivp reference
  ``validation.ode.ode_simulate_layer``;
* for p = 2: the engine vs the plain-loop eq. 19 reference
  ``validation.ode.closed_form_layer``, and the engine's method="closed_form"
  vs method="root".

A "count mismatch" is a (case, neuron) whose number of spikes differs; max|dt|
is over neurons whose counts agree. Exit status 1 if any expectation fails:
no count mismatches, |dt| <= 1e-9 vs ODE, <= 1e-10 vs the eq. 19 reference,
<= 1e-12 closed_form vs root.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import eventsim as es

from .cases import TAUS, random_case
from .ode import closed_form_layer, ode_simulate_layer

TOL_ODE = 1e-9
TOL_CF_REF = 1e-10
TOL_CF_ROOT = 1e-12


def _trains(times, ids, n):
    times = np.asarray(times)
    ids = np.asarray(ids)
    return [times[ids == j] for j in range(n)]


def _diff(a_t, a_j, b_t, b_j, n):
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
                bad, dt = _diff(out.times, out.ids, o_t, o_j, n)
                stats["ode_bad"] += bad
                stats["ode_dt"] = max(stats["ode_dt"], dt)
                if p == 2.0:
                    r_t, r_j = closed_form_layer(c.times, c.ids, c.weights, tau_i, tau_v,
                                                 c.threshold, c.t_end, single)
                    bad, dt = _diff(out.times, out.ids, r_t, r_j, n)
                    stats["ref_bad"] += bad
                    stats["ref_dt"] = max(stats["ref_dt"], dt)
                    cf = es.simulate_layer(c.times, c.ids, c.weights, lif, c.t_end,
                                           single_spike=single, method="closed_form")
                    root = es.simulate_layer(c.times, c.ids, c.weights, lif, c.t_end,
                                             single_spike=single, method="root")
                    bad, dt = _diff(cf.times, cf.ids, root.times, root.ids, n)
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
    ap.add_argument("--cases", type=int, default=None, help="cases per row (default 40, quick 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.cases if args.cases is not None else (3 if args.quick else 40)
    return 0 if run(n, args.seed) else 1


if __name__ == "__main__":
    sys.exit(main())
